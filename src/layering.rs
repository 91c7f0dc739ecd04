//! Keeps the arrows pointing one way: the domain and the models below (`models`, `registry`,
//! `trustpub`, `services`, `mail`) never reach up into the web layer (`api`, `pages`) or actix, and the
//! two halves of the web layer do not import each other. What both need sits lower (`auth`
//! for who is calling, `services` for the rules, `errors` for the error type).
//!
//! The check reads the source: every path that starts at the crate root (`crate::…`, or a
//! `super::…` that climbs to it) and every `actix_web`/`actix_session` path, comments left out.

use std::path::{Path, PathBuf};

/// The modules below the web layer, and what they must not name.
const LOWER: [&str; 5] = ["models", "registry", "trustpub", "services", "mail"];
const WEB_OR_ACTIX: [&str; 4] = ["api", "pages", "actix_web", "actix_session"];

/// One `.rs` file: its path under `src/` and its module path (`api::crates::owners`).
struct Source {
    relative: String,
    module: Vec<String>,
    code: String,
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn load(root: &Path) -> Vec<Source> {
    let mut paths = Vec::new();
    sources(root, &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let mut module: Vec<String> = relative
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_owned)
                .collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let code = without_comments(&std::fs::read_to_string(&path).unwrap_or_default());
            Source {
                relative,
                module,
                code,
            }
        })
        .collect()
}

/// The text without `//` comments (doc comments included), so that a doc link is not an arrow.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // Not inside a string such as "http://…" (a line with a quote before its `//` is
            // kept whole: good enough here, where no such line names a module after it).
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The top-level names this file reaches: `crate::x…` and `crate::{x, y…}` give `x` (and `y`),
/// `super::…` climbing to the root gives the next segment, `actix_web…` gives `actix_web`.
fn reached(source: &Source) -> Vec<String> {
    let code = &source.code;
    let mut names = Vec::new();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let Some(offset) = rest.find(|c: char| is_ident(c)) else {
            break;
        };
        let start = at + offset;
        // Only paths that start here, not `foo::crate` or the middle of an identifier.
        let preceded = code[..start].chars().next_back();
        let word_end = code[start..]
            .find(|c: char| !is_ident(c))
            .map_or(code.len(), |e| start + e);
        let word = &code[start..word_end];
        at = word_end;
        if preceded.is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        match word {
            "actix_web" | "actix_session" => names.push(word.to_owned()),
            "crate" => names.extend(after(&code[word_end..])),
            "super" => {
                // Climb: each further `super::` one more level.
                let mut depth = 1;
                let mut tail = &code[word_end..];
                while let Some(next) = tail.trim_start().strip_prefix("::") {
                    match next.trim_start().strip_prefix("super") {
                        Some(more) if !more.starts_with(is_ident) => {
                            depth += 1;
                            tail = more;
                        }
                        _ => break,
                    }
                }
                // `super` from `a/b.rs` (module a::b) is `a`; from `a/mod.rs` (module a) the root.
                if depth >= source.module.len() {
                    names.extend(after(tail));
                }
            }
            _ => {}
        }
    }
    names
}

/// The first segment(s) after `::` in `tail`: one name, or each name of a `{…}` group.
fn after(tail: &str) -> Vec<String> {
    let Some(tail) = tail.trim_start().strip_prefix("::") else {
        return Vec::new();
    };
    let tail = tail.trim_start();
    if let Some(group) = tail.strip_prefix('{') {
        let mut depth = 0;
        let mut names = Vec::new();
        let mut item_start = true;
        let mut current = String::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if depth == 0 && item_start && is_ident(c) => current.push(c),
                _ if depth == 0 && item_start && !current.is_empty() => {
                    names.push(std::mem::take(&mut current));
                    item_start = false;
                }
                _ => {}
            }
        }
        if !current.is_empty() {
            names.push(current);
        }
        names
    } else {
        let name: String = tail.chars().take_while(|c| is_ident(*c)).collect();
        if name.is_empty() {
            Vec::new()
        } else {
            vec![name]
        }
    }
}

/// Every arrow that points the wrong way, as `file -> name`.
fn violations(sources: &[Source]) -> Vec<String> {
    let mut wrong = Vec::new();
    for source in sources {
        let Some(top) = source.module.first().map(String::as_str) else {
            continue;
        };
        let forbidden: Vec<&str> = match top {
            top if LOWER.contains(&top) => {
                let mut names = WEB_OR_ACTIX.to_vec();
                if top != "services" {
                    // The models and the domain answer their own errors, never the web's.
                    names.extend(["auth", "errors"]);
                }
                names
            }
            "api" => vec!["pages"],
            "pages" => vec!["api"],
            _ => continue,
        };
        for name in reached(source) {
            if forbidden.contains(&name.as_str()) {
                let arrow = format!("src/{} -> {name}", source.relative);
                if !wrong.contains(&arrow) {
                    wrong.push(arrow);
                }
            }
        }
    }
    wrong
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn arrows_point_one_way() {
    let sources = load(&src());
    assert!(sources.len() > 50, "read the sources under src/");
    let wrong = violations(&sources);
    assert!(
        wrong.is_empty(),
        "modules that import a layer above them (move what both need lower: auth, services, models):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scanner_sees_every_way_of_naming_a_module() {
    let source = |relative: &str, code: &str| {
        let mut module: Vec<String> = relative
            .trim_end_matches(".rs")
            .split('/')
            .map(str::to_owned)
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        Source {
            relative: relative.to_owned(),
            module,
            code: without_comments(code),
        }
    };
    let cases = [
        (
            "models/a.rs",
            "use crate::pages::session::Layout;",
            vec!["src/models/a.rs -> pages"],
        ),
        (
            "models/a.rs",
            "use crate::{db::DbConn,\n    api::x};",
            vec!["src/models/a.rs -> api"],
        ),
        (
            "models/a.rs",
            "let x = crate::errors::not_found(\"\");",
            vec!["src/models/a.rs -> errors"],
        ),
        ("services/a.rs", "use crate::errors::AppError;", vec![]),
        (
            "services/a.rs",
            "use actix_web::HttpRequest;",
            vec!["src/services/a.rs -> actix_web"],
        ),
        (
            "trustpub/a.rs",
            "fn f(r: &actix_web::HttpRequest) {}",
            vec!["src/trustpub/a.rs -> actix_web"],
        ),
        (
            "registry/a.rs",
            "use super::super::api::x;",
            vec!["src/registry/a.rs -> api"],
        ),
        ("registry/a.rs", "use super::tarball;", vec![]),
        (
            "pages/a.rs",
            "use crate::api::crates::find_crate;",
            vec!["src/pages/a.rs -> api"],
        ),
        (
            "pages/a.rs",
            "use super::super::api;",
            vec!["src/pages/a.rs -> api"],
        ),
        (
            "api/x/mod.rs",
            "crate::pages::session::api_session_user(req)",
            vec!["src/api/x/mod.rs -> pages"],
        ),
        (
            "api/a.rs",
            "use crate::auth::session::api_session_user;",
            vec![],
        ),
        (
            "api/a.rs",
            "/// see [`crate::pages::session`]\nfn f() {}",
            vec![],
        ),
        (
            "models/a.rs",
            "use crate::db::DbConn; // not crate::api",
            vec![],
        ),
    ];
    for (file, code, expected) in cases {
        let found = violations(&[source(file, code)]);
        assert_eq!(found, expected, "{file}: {code}");
    }
}
