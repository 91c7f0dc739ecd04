//! `docs/api.md`, the HTTP reference users read, names every route of `src/router.rs` as
//! `` `METHOD /path` `` and names no route that the router does not have, so it stays complete
//! as routes come and go.

use std::collections::BTreeSet;

const ROUTER: &str = include_str!("../../src/router.rs");
const REFERENCE: &str = include_str!("../../docs/api.md");

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Every route of the router's source as (method, full path): `.route("pattern",
/// web::method()…)` inside any number of `web::scope("prefix")`, which end where the
/// parenthesis around them closes. A pattern's regex (`{path:.+}`) is dropped (`{path}`).
pub fn router_routes(source: &str) -> Vec<(String, String)> {
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    let mut routes = Vec::new();
    // (prefix, the depth the scope was opened at)
    let mut scopes: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let rest = code.get(i..).unwrap_or_default();
        if rest.starts_with("web::scope(") {
            let (prefix, _) = string_literal(rest).expect("web::scope(\"prefix\")");
            scopes.push((prefix, depth));
        } else if rest.starts_with(".route(") {
            let (pattern, after) = string_literal(rest).expect(".route(\"pattern\", …)");
            let method = rest[after..]
                .find("web::")
                .map(|at| &rest[after + at + "web::".len()..])
                .and_then(|call| call.split_once("()"))
                .map(|(name, _)| name.to_ascii_uppercase())
                .expect(".route(…, web::method())");
            let prefix: String = scopes.iter().map(|(p, _)| p.as_str()).collect();
            routes.push((method, without_regex(&format!("{prefix}{pattern}"))));
        }
        match bytes[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                while scopes.last().is_some_and(|(_, opened)| depth < *opened) {
                    scopes.pop();
                }
            }
            b'"' => {
                // Skip the literal: what it holds is no code.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        i += 1;
    }
    routes
}

/// The first string literal of `text` and the index just after it.
fn string_literal(text: &str) -> Option<(String, usize)> {
    let start = text.find('"')? + 1;
    let len = text[start..].find('"')?;
    Some((text[start..start + len].to_owned(), start + len + 1))
}

/// `/index/{path:.+}` → `/index/{path}`.
fn without_regex(path: &str) -> String {
    let mut out = String::new();
    let mut in_regex = false;
    for c in path.chars() {
        match c {
            ':' if out.rfind('{') > out.rfind('}') => in_regex = true,
            '}' => {
                in_regex = false;
                out.push(c);
            }
            _ if in_regex => {}
            _ => out.push(c),
        }
    }
    out
}

/// Every `` `METHOD /path` `` of the reference (a query string is not part of the route).
fn documented_routes(text: &str) -> BTreeSet<(String, String)> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|code| {
            let (method, path) = code.split_once(' ')?;
            if !METHODS.contains(&method) || !path.starts_with('/') || path.contains(' ') {
                return None;
            }
            let path = path.split('?').next().unwrap_or(path);
            Some((method.to_owned(), path.to_owned()))
        })
        .collect()
}

#[test]
fn the_route_reader_sees_every_route_of_the_router_with_its_scope() {
    let routes = router_routes(ROUTER);
    let written = ROUTER
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .map(|line| line.matches(".route(").count())
        .sum::<usize>();
    assert_eq!(routes.len(), written, "{routes:?}");
    for expected in [
        ("GET", "/health"),
        ("GET", "/index/{path}"),
        ("PUT", "/api/v1/crates/new"),
        ("DELETE", "/api/v1/crates/{name}/{version}/yank"),
        ("GET", "/me"),
        ("POST", "/me/logout-everywhere"),
        ("GET", "/crates/{name}"),
        ("GET", "/crates/{name}/settings"),
        ("POST", "/crates/{name}/settings/owners/remove"),
    ] {
        assert!(
            routes
                .iter()
                .any(|(m, p)| (m.as_str(), p.as_str()) == expected),
            "{expected:?} not in {routes:?}"
        );
    }
    assert!(
        !routes
            .iter()
            .any(|(_, p)| p == "/crates/{name}/settings/me"),
        "a scope ends where it closes"
    );
}

/// A route with a `{kind}` segment serves every Trusted Publishing provider: the reference may
/// name it as written or once per provider (`github_configs`, `gitlab_configs`, …).
fn expansions((method, path): &(String, String)) -> Vec<(String, String)> {
    if !path.contains("{kind}") {
        return Vec::new();
    }
    wharf::trustpub::providers::ProviderKind::ALL
        .iter()
        .map(|kind| (method.clone(), path.replace("{kind}", kind.as_str())))
        .collect()
}

#[test]
fn the_api_reference_names_every_route_of_the_router_and_no_other() {
    let routes: BTreeSet<_> = router_routes(ROUTER).into_iter().collect();
    let documented = documented_routes(REFERENCE);
    let missing: Vec<_> = routes
        .iter()
        .filter(|route| {
            let per_provider = expansions(route);
            !documented.contains(*route)
                && (per_provider.is_empty() || !per_provider.iter().all(|r| documented.contains(r)))
        })
        .map(|(m, p)| format!("`{m} {p}`"))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/api.md does not describe these routes of src/router.rs: {}",
        missing.join(", ")
    );
    let served: BTreeSet<_> = routes
        .iter()
        .flat_map(|route| expansions(route).into_iter().chain([route.clone()]))
        .collect();
    let stale: Vec<_> = documented
        .difference(&served)
        .map(|(m, p)| format!("`{m} {p}`"))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/api.md describes routes that src/router.rs does not have: {}",
        stale.join(", ")
    );
}
