//! What the server does when it starts.

use std::time::{Duration, SystemTime};

use crate::support::TestApp;

#[tokio::test]
async fn temporary_files_a_crash_left_in_storage_are_removed_at_start_once_old()
-> anyhow::Result<()> {
    let storage = tempfile::tempdir()?;
    let dir = storage.path().join("crates/left_over");
    std::fs::create_dir_all(&dir)?;
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    let write = |name: &str, modified: SystemTime| -> anyhow::Result<()> {
        let file = std::fs::File::create(dir.join(name))?;
        file.set_modified(modified)?;
        Ok(())
    };
    write(".tmp-crashed", two_hours_ago)?;
    // Another instance sharing the folder may be writing this one right now.
    write(".tmp-in-flight", SystemTime::now())?;
    write("left_over-1.0.0.crate", two_hours_ago)?;
    std::fs::write(storage.path().join(".tmp-at-the-root"), b"x")?;
    std::fs::File::open(storage.path().join(".tmp-at-the-root"))?.set_modified(two_hours_ago)?;

    let _app = TestApp::builder()
        .set("storage_dir", storage.path().to_string_lossy())
        .spawn()
        .await;

    assert!(!dir.join(".tmp-crashed").exists());
    assert!(!storage.path().join(".tmp-at-the-root").exists());
    assert!(dir.join(".tmp-in-flight").exists());
    assert!(dir.join("left_over-1.0.0.crate").exists());
    Ok(())
}
