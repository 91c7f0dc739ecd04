//! HTTP behaviour every route shares: `HEAD` answers like `GET` without a body,
//! `Strict-Transport-Security` under an https public URL, and compressed request bodies are
//! refused. Requests go over a raw socket, so what is checked is exactly what the server writes.

use std::collections::BTreeMap;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::web_client::{log_in, spawn_with_github};
use crate::support::{CrateBuilder, TestApp, index_path};

/// A response as read off the wire.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    /// Lower-case names; repeated headers keep their order.
    headers: BTreeMap<String, Vec<String>>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|values| values.first())
            .map(String::as_str)
    }
}

/// Sends one HTTP/1.1 request on a fresh connection and reads the answer until the server
/// closes it.
async fn raw_request(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
) -> anyhow::Result<RawResponse> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        app.port
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut bytes = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut bytes),
    )
    .await
    .with_context(|| format!("{method} {path}: the server did not close the connection"))??;
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("{method} {path}: no end of headers"))?;
    let head = std::str::from_utf8(&bytes[..end])?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("a status line")?;
    let status = status_line
        .split(' ')
        .nth(1)
        .context("a status code")?
        .parse()?;
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').context("a header line")?;
        map.entry(name.trim().to_ascii_lowercase())
            .or_default()
            .push(value.trim().to_owned());
    }
    Ok(RawResponse {
        status,
        headers: map,
        body: bytes[end + 4..].to_vec(),
    })
}

/// One row of the HEAD table: a GET route of `src/router.rs` (its scope and the pattern as
/// written there), a concrete request, and the status GET answers.
struct Case {
    route: (&'static str, &'static str),
    path: String,
    headers: Vec<(&'static str, String)>,
    status: u16,
    /// Headers whose value is random per response, compared by presence only.
    volatile: &'static [&'static str],
}

fn case(route: (&'static str, &'static str), path: impl Into<String>, status: u16) -> Case {
    Case {
        route,
        path: path.into(),
        headers: Vec::new(),
        status,
        volatile: &[],
    }
}

impl Case {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
        self
    }

    fn volatile(mut self, names: &'static [&'static str]) -> Case {
        self.volatile = names;
        self
    }
}

#[tokio::test]
async fn every_get_route_answers_head_with_the_same_status_and_headers_and_no_body()
-> anyhow::Result<()> {
    let (app, _github) = spawn_with_github().await?;
    let token = app.token("alice");
    app.publish_ok(
        &token,
        &CrateBuilder::new("headcheck", "1.0.0").readme("# headcheck\n\nHello.\n"),
    )
    .await;
    let gitlab = app
        .add_gitlab_config(&token, "headcheck", "acme", None)
        .await;
    let gitlab_id = gitlab["gitlab_config"]["id"]
        .as_i64()
        .context("a config id")?;
    let index = format!("/index/{}", index_path("headcheck"));
    let etag = raw_request(&app, "GET", &index, &[])
        .await?
        .header("etag")
        .context("an ETag")?
        .to_owned();
    let alice = log_in(&app, "alice").await?;
    alice.get("/me").await?; // takes the "Logged in" flash, which would change the cookie
    let cookie = alice.cookie().context("a session cookie")?;
    let auth = token.clone();

    let api = "/api/v1";
    let index_scope = "/index";
    let settings = "/settings";
    let crate_settings = "/crates/{name}/settings";
    let cases = vec![
        case(("", "/health"), "/health", 200),
        case(("", "/ready"), "/ready", 200),
        case((index_scope, "/config.json"), "/index/config.json", 200),
        case((index_scope, "/{path:.+}"), index.as_str(), 200),
        case((index_scope, "/{path:.+}"), index.as_str(), 304).header("If-None-Match", &etag),
        case((index_scope, "/{path:.+}"), "/index/no/ne/nonexistent", 404),
        case((api, "/crates"), "/api/v1/crates?q=head&per_page=5", 200),
        case((api, "/crates/{name}"), "/api/v1/crates/headcheck", 200),
        case((api, "/crates/{name}"), "/api/v1/crates/missing", 404),
        case(
            (api, "/crates/{name}/owners"),
            "/api/v1/crates/headcheck/owners",
            200,
        ),
        case(
            (api, "/crates/{name}/{version}/download"),
            "/api/v1/crates/headcheck/1.0.0/download",
            200,
        ),
        case(
            (api, "/crates/{name}/{version}/download"),
            "/api/v1/crates/headcheck/9.9.9/download",
            404,
        ),
        case(
            (api, "/trusted_publishing/{kind}_configs"),
            "/api/v1/trusted_publishing/github_configs?crate=headcheck",
            200,
        )
        .header("Authorization", &auth),
        case(
            (api, "/trusted_publishing/{kind}_configs"),
            "/api/v1/trusted_publishing/gitlab_configs?crate=headcheck",
            200,
        )
        .header("Authorization", &auth),
        case(
            (api, "/trusted_publishing/{kind}_configs"),
            "/api/v1/trusted_publishing/gitlab_configs?crate=headcheck",
            403,
        ),
        case(
            (api, "/trusted_publishing/{kind}_configs"),
            "/api/v1/trusted_publishing/jenkins_configs?crate=headcheck",
            404,
        )
        .header("Authorization", &auth),
        case(("", "/"), "/", 200),
        case(("", "/"), "/", 200).header("Cookie", &cookie),
        case(("", "/search"), "/search?q=head", 200),
        case(("", "/static/wharf.css"), "/static/wharf.css", 200),
        case(("", "/login"), "/login", 200),
        case(("", "/login"), "/login?next=/settings/tokens", 303).header("Cookie", &cookie),
        case(("", "/login/github"), "/login/github?next=/me", 303)
            .volatile(&["location", "set-cookie"]),
        case(
            ("", "/login/github/callback"),
            "/login/github/callback",
            400,
        ),
        case(("", "/me"), "/me", 303),
        case(("", "/me"), "/me", 200).header("Cookie", &cookie),
        case((settings, "/tokens"), "/settings/tokens", 303),
        case((settings, "/tokens"), "/settings/tokens", 200).header("Cookie", &cookie),
        case(
            (settings, "/pending-publishers"),
            "/settings/pending-publishers",
            303,
        ),
        case(
            (settings, "/pending-publishers"),
            "/settings/pending-publishers",
            200,
        )
        .header("Cookie", &cookie),
        case(("", "/crates/{name}"), "/crates/headcheck", 200),
        case(("", "/crates/{name}"), "/crates/missing", 404),
        case(
            ("", "/crates/{name}/history"),
            "/crates/headcheck/history",
            200,
        ),
        case(("", "/users/{login}"), "/users/alice", 200),
        case(("", "/users/{login}"), "/users/nobody-here", 404),
        case((crate_settings, ""), "/crates/headcheck/settings", 200).header("Cookie", &cookie),
        case((crate_settings, ""), "/crates/headcheck/settings", 303),
        case(
            (crate_settings, "/{kind}/{id}/remove"),
            format!("/crates/headcheck/settings/gitlab/{gitlab_id}/remove"),
            200,
        )
        .header("Cookie", &cookie),
        // unknown paths: the HTML and the JSON 404
        case(("", "/no/such/page"), "/no/such/page", 404),
        case((api, "/no/such/call"), "/api/v1/no/such/call", 404),
    ];

    // The table covers every GET route of the router: a new one must be added here.
    let router = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/router.rs"))?;
    let get_routes = router.matches("web::get()").count();
    let covered: std::collections::BTreeSet<_> = cases
        .iter()
        .map(|c| c.route)
        .filter(|(_, pattern)| !pattern.starts_with("/no/such"))
        .collect();
    for (scope, pattern) in &covered {
        assert!(
            router.contains(&format!("\"{pattern}\"")) && router.contains(&format!("\"{scope}\"")),
            "{scope}{pattern} is not a route of src/router.rs"
        );
    }
    assert_eq!(
        covered.len(),
        get_routes,
        "src/router.rs has {get_routes} GET routes, the HEAD table covers {}: {covered:?}",
        covered.len()
    );

    for case in &cases {
        let label = format!("{} {:?}", case.path, case.headers);
        let get = raw_request(&app, "GET", &case.path, &case.headers).await?;
        let head = raw_request(&app, "HEAD", &case.path, &case.headers).await?;
        assert_eq!(get.status, case.status, "GET {label}");
        assert_eq!(head.status, get.status, "HEAD {label}");
        assert!(
            head.body.is_empty(),
            "HEAD {label} sent a body of {} bytes",
            head.body.len()
        );
        if let Some(length) = get.header("content-length") {
            assert_eq!(
                length,
                get.body.len().to_string(),
                "GET {label}: Content-Length is the body's"
            );
        }
        let comparable = |r: &RawResponse| -> BTreeMap<String, Vec<String>> {
            r.headers
                .iter()
                .filter(|(name, _)| name.as_str() != "date")
                .map(|(name, values)| {
                    if case.volatile.contains(&name.as_str()) {
                        (name.clone(), vec!["<volatile>".to_owned(); values.len()])
                    } else {
                        (name.clone(), values.clone())
                    }
                })
                .collect()
        };
        assert_eq!(
            comparable(&head),
            comparable(&get),
            "HEAD {label}: the headers differ from GET"
        );
    }
    Ok(())
}

#[tokio::test]
async fn head_on_a_route_without_get_answers_as_get_does_there_never_200() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    for path in [
        "/logout",
        "/api/v1/crates/new",
        "/api/v1/trusted_publishing/tokens",
        "/api/v1/crates/x/1.0.0/yank",
        "/settings/tokens/1/revoke",
        "/crates/x/settings/github",
    ] {
        let get = raw_request(&app, "GET", path, &[]).await?;
        let head = raw_request(&app, "HEAD", path, &[]).await?;
        assert!(
            matches!(head.status, 303 | 404 | 405),
            "HEAD {path}: {}",
            head.status
        );
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} sent a body");
    }
    Ok(())
}

/// Paths that take different ways through the server: pages, the API, the index, static
/// files, errors from handlers and from the login guard.
const EVERY_KIND_OF_RESPONSE: [(&str, &str); 10] = [
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/index/config.json"),
    ("GET", "/api/v1/crates?q=x"),
    ("GET", "/static/wharf.css"),
    ("GET", "/no/such/page"),
    ("GET", "/api/v1/no/such/call"),
    ("GET", "/settings/tokens"),
    ("GET", "/login/github/callback"),
    ("HEAD", "/"),
];

#[tokio::test]
async fn strict_transport_security_is_sent_on_every_response_under_https_only() -> anyhow::Result<()>
{
    let https = TestApp::builder()
        .set("public_url", "https://crates.example.com")
        .spawn()
        .await;
    for (method, path) in EVERY_KIND_OF_RESPONSE {
        let answer = raw_request(&https, method, path, &[]).await?;
        assert_eq!(
            answer.header("strict-transport-security"),
            Some("max-age=31536000"),
            "{method} {path} ({})",
            answer.status
        );
    }
    let post = raw_request(&https, "POST", "/logout", &[]).await?;
    assert_eq!(post.status, 403);
    assert!(post.headers.contains_key("strict-transport-security"));

    let http = TestApp::spawn().await;
    for (method, path) in EVERY_KIND_OF_RESPONSE {
        let answer = raw_request(&http, method, path, &[]).await?;
        assert_eq!(
            answer.header("strict-transport-security"),
            None,
            "plain http: {method} {path}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn compressed_request_bodies_are_refused_with_a_clear_error() -> anyhow::Result<()> {
    use std::io::Write;

    let app = TestApp::spawn().await;
    let token = app.token("alice");
    let plain = CrateBuilder::new("squeezed", "1.0.0").publish_body();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&plain)?;
    let gzipped = encoder.finish()?;

    let response = app
        .client
        .put(app.url("/api/v1/crates/new"))
        .header("Authorization", &token)
        .header("Content-Encoding", "gzip")
        .body(gzipped)
        .send()
        .await?;
    assert_eq!(response.status(), 415);
    let body: serde_json::Value = response.json().await?;
    assert_eq!(
        crate::support::detail(&body),
        "this server does not take compressed request bodies (Content-Encoding: gzip); send the body uncompressed"
    );

    let response = app
        .client
        .post(app.url("/api/v1/trusted_publishing/tokens"))
        .header("Content-Encoding", "br")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await?;
    assert_eq!(response.status(), 415);

    let response = app
        .client
        .put(app.url("/api/v1/crates/new"))
        .header("Authorization", &token)
        .header("Content-Encoding", "identity")
        .body(plain)
        .send()
        .await?;
    assert_eq!(response.status(), 200, "identity is no encoding");
    Ok(())
}
