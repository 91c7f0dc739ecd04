-- The whole file back in `index_files`, its chunks joined in order.
ALTER TABLE index_files ADD COLUMN content TEXT NOT NULL DEFAULT '';
UPDATE index_files SET content = COALESCE(
    (SELECT group_concat(c.content, '' ORDER BY c.seq) FROM index_chunks c
     WHERE c.crate_id = index_files.crate_id),
    '');
DROP TABLE index_chunks;
