//! Small HTTP servers on 127.0.0.1 that speak just enough of the real protocols: a registry
//! (`config.json`, the Trusted Publishing exchange and revocation), the GitHub Actions
//! ID-token endpoint and the Buildkite agent API's OIDC endpoint; and a stand-in
//! `buildkite-agent` that asks the latter as the real agent does.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use anyhow::Context as _;
use cargo_credential::{Credential as _, CredentialRequest};
use cargo_credential_wharf::{Environment, WharfCredential};

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// A reply: status and JSON body.
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            body: body.to_string(),
        }
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            body: String::new(),
        }
    }

    pub fn errors(status: u16, detail: &str) -> Self {
        Self::json(
            status,
            serde_json::json!({ "errors": [{ "detail": detail }] }),
        )
    }
}

type Handler = dyn Fn(&Recorded, &str) -> Reply + Send + Sync;

/// A server answering every request with `handler(request, base_url)`.
pub struct FakeServer {
    base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeServer {
    pub fn start(
        handler: impl Fn(&Recorded, &str) -> Reply + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let requests = Arc::clone(&requests);
            let base_url = base_url.clone();
            // The thread ends with the test process; every test's traffic is a handful of
            // requests to this loopback address.
            thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let _ = serve(stream, &*handler, &base_url, &requests);
                }
            });
        }
        Ok(Self { base_url, requests })
    }

    pub fn url(&self) -> &str {
        &self.base_url
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn serve(
    stream: TcpStream,
    handler: &Handler,
    base_url: &str,
    requests: &Mutex<Vec<Recorded>>,
) -> anyhow::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().context("no method")?.to_owned();
    let target = parts.next().context("no target")?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let recorded = Recorded {
        method,
        target,
        headers,
        body: String::from_utf8(body)?,
    };
    let reply = handler(&recorded, base_url);
    requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(recorded);

    let mut stream = stream;
    let mut head = format!("HTTP/1.1 {} Fake\r\nConnection: close\r\n", reply.status);
    if reply.status != 204 {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            reply.body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if reply.status != 204 {
        stream.write_all(reply.body.as_bytes())?;
    }
    stream.flush()?;
    Ok(())
}

/// How the fake registry answers the exchange.
#[derive(Clone)]
pub enum Exchange {
    /// `200 {"token":"wharf_tp_<n>"}`, counting from 1.
    Issue,
    /// This status with `{"errors":[{"detail"}]}`.
    Refuse(u16, &'static str),
}

/// A registry with a sparse index at `/index/` and the Trusted Publishing endpoints at its root.
pub fn fake_registry(exchange: Exchange, revoke_status: u16) -> anyhow::Result<FakeServer> {
    fake_registry_with(exchange, revoke_status, false)
}

/// [`fake_registry`], private (`"auth-required": true`) when `auth_required`.
pub fn fake_registry_with(
    exchange: Exchange,
    revoke_status: u16,
    auth_required: bool,
) -> anyhow::Result<FakeServer> {
    let issued = AtomicUsize::new(0);
    FakeServer::start(
        move |request, base_url| match (request.method.as_str(), request.path()) {
            ("GET", "/index/config.json") => Reply::json(
                200,
                serde_json::json!({
                    "dl": format!("{base_url}/api/v1/crates"),
                    "api": base_url,
                    "auth-required": auth_required,
                }),
            ),
            ("POST", "/api/v1/trusted_publishing/tokens") => match &exchange {
                Exchange::Issue => {
                    let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                    Reply::json(200, serde_json::json!({ "token": format!("wharf_tp_{n}") }))
                }
                Exchange::Refuse(status, detail) => Reply::errors(*status, detail),
            },
            ("DELETE", "/api/v1/trusted_publishing/tokens") => {
                if revoke_status == 204 {
                    Reply::empty(204)
                } else {
                    Reply::errors(revoke_status, "try again later")
                }
            }
            _ => Reply::errors(404, "not found"),
        },
    )
}

/// The runner's request token the fake GitHub expects as `Authorization: Bearer …`.
pub const GITHUB_REQUEST_TOKEN: &str = "runner-request-token";

/// GitHub Actions' ID-token endpoint: `GET /idtoken?api-version=2.0&audience=…` answers
/// `{"count":1,"value":"<jwt>"}`, where the fake JWT names its audience and a serial number.
pub fn fake_github() -> anyhow::Result<FakeServer> {
    let issued = AtomicUsize::new(0);
    FakeServer::start(move |request, _| {
        if request.header("authorization") != Some(&format!("Bearer {GITHUB_REQUEST_TOKEN}")) {
            return Reply::json(401, serde_json::json!({ "message": "Bad credentials" }));
        }
        let audience = url::Url::parse(&format!("http://x{}", request.target))
            .ok()
            .and_then(|url| {
                url.query_pairs()
                    .find(|(key, _)| key == "audience")
                    .map(|(_, value)| value.into_owned())
            });
        match audience {
            Some(audience) => {
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                Reply::json(
                    200,
                    serde_json::json!({ "count": 1, "value": format!("gh.{audience}.{n}") }),
                )
            }
            None => Reply::json(400, serde_json::json!({ "message": "audience missing" })),
        }
    })
}

/// The environment of a GitHub Actions job with `permissions: id-token: write`.
pub fn github_env(github: &FakeServer, runner_temp: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("GITHUB_ACTIONS".into(), "true".into()),
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL".into(),
            format!("{}/idtoken?api-version=2.0", github.url()),
        ),
        (
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN".into(),
            GITHUB_REQUEST_TOKEN.into(),
        ),
        ("RUNNER_TEMP".into(), runner_temp.display().to_string()),
    ]
}

/// Runs one request line through the provider, as `cargo_credential::main` would, and returns
/// the response line it would print.
pub fn respond(env: Vec<(String, String)>, request: &str) -> anyhow::Result<String> {
    respond_in(Environment::new(env), request)
}

/// [`respond`] in an environment built by the caller (its own temporary directory, a shorter
/// agent timeout).
pub fn respond_in(env: Environment, request: &str) -> anyhow::Result<String> {
    let provider = WharfCredential::new(env);
    let request: CredentialRequest<'_> = serde_json::from_str(request)?;
    let response = provider.perform(&request.registry, &request.action, &request.args);
    Ok(serde_json::to_string(&response)?)
}

/// A publish request as cargo sends it (the documented message, on one line).
pub fn publish_request(index_url: &str, args: &[&str]) -> String {
    serde_json::json!({
        "v": 1,
        "kind": "get",
        "operation": "publish",
        "name": "sample",
        "vers": "0.1.0",
        "cksum": "e1b3c2a3d07c0b4b0e1f5d3b1e45bd5b53a6e0c6d8e2b7b4d06e5c47f8d3a0b1",
        "registry": { "index-url": index_url, "name": "my-registry" },
        "args": args,
    })
    .to_string()
}

/// A request of `kind: get` for another operation.
pub fn get_request(index_url: &str, operation: &str) -> String {
    serde_json::json!({
        "v": 1,
        "kind": "get",
        "operation": operation,
        "name": "sample",
        "vers": "0.1.0",
        "registry": { "index-url": index_url, "name": "my-registry" },
        "args": [],
    })
    .to_string()
}

/// `cargo logout --registry my-registry`.
pub fn logout_request(index_url: &str) -> String {
    serde_json::json!({
        "v": 1,
        "kind": "logout",
        "registry": { "index-url": index_url, "name": "my-registry" },
        "args": [],
    })
    .to_string()
}

/// The sparse index URL cargo would pass for `server`.
pub fn index_url(server: &FakeServer) -> String {
    format!("sparse+{}/index/", server.url())
}

/// `{"Ok":{"kind":"get","token":…,"cache":"never","operation_independent":false}}`, byte for
/// byte as cargo reads it.
/// A read token cargo keeps for the rest of its command.
pub fn session_token(token: &str) -> String {
    format!(
        r#"{{"Ok":{{"kind":"get","token":"{token}","cache":"session","operation_independent":false}}}}"#
    )
}

pub fn single_use_token(token: &str) -> String {
    format!(
        r#"{{"Ok":{{"kind":"get","token":"{token}","cache":"never","operation_independent":false}}}}"#
    )
}

/// The agent access token the fake Buildkite agent API expects as `Authorization: Token …`.
#[cfg(unix)]
pub const BUILDKITE_AGENT_ACCESS_TOKEN: &str = "bkaa_fake-agent-access-token";

/// The job the fake Buildkite agent API issues ID tokens for.
#[cfg(unix)]
pub const BUILDKITE_JOB_ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

/// Buildkite's agent API, as `buildkite-agent oidc request-token` uses it:
/// `POST /v3/jobs/{job}/oidc/tokens` with `Authorization: Token <agent access token>` and
/// `{"audience":…,"claims":[…]}` answers `{"token":"<jwt>"}`. The fake JWT has the three
/// base64url parts of a real one; the middle one is the audience in hex, the last a serial.
#[cfg(unix)]
pub fn fake_buildkite_agent_api() -> anyhow::Result<FakeServer> {
    let issued = AtomicUsize::new(0);
    FakeServer::start(move |request, _| {
        let expected_path = format!("/v3/jobs/{BUILDKITE_JOB_ID}/oidc/tokens");
        if request.method != "POST" || request.path() != expected_path {
            return Reply::json(404, serde_json::json!({ "message": "Not Found" }));
        }
        if request.header("authorization") != Some(&format!("Token {BUILDKITE_AGENT_ACCESS_TOKEN}"))
        {
            return Reply::json(401, serde_json::json!({ "message": "Unauthorized" }));
        }
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap_or_default();
        match body["audience"].as_str() {
            Some(audience) => {
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                Reply::json(
                    200,
                    serde_json::json!({ "token": buildkite_jwt(audience, n) }),
                )
            }
            None => Reply::json(422, serde_json::json!({ "message": "audience missing" })),
        }
    })
}

/// The fake JWT [`fake_buildkite_agent_api`] issues as its `n`th token for `audience`.
#[cfg(unix)]
pub fn buildkite_jwt(audience: &str, n: usize) -> String {
    format!("eyJhbGciOiJSUzI1NiJ9.{}.bk{n}", hex::encode(audience))
}

/// Writes an executable file `buildkite-agent` with `contents` into `dir`.
#[cfg(unix)]
pub fn write_agent(dir: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("buildkite-agent");
    std::fs::write(&path, contents)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A stand-in `buildkite-agent` in `dir` that does what the real `oidc request-token` does:
/// reads `--audience` and `--claim`, posts them to `$BUILDKITE_AGENT_ENDPOINT/jobs/
/// $BUILDKITE_JOB_ID/oidc/tokens` with the agent access token, and prints the token, or exits 1
/// with the API's answer on stderr. Written in Python (its standard urllib), as curl may be
/// missing; the interpreter's own path goes into the `#!` line, since the provider runs the
/// agent with the job's environment only.
#[cfg(unix)]
pub fn buildkite_agent_stand_in(dir: &std::path::Path) -> anyhow::Result<()> {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .context("these tests need python3 on PATH")?;
    anyhow::ensure!(output.status.success(), "python3 failed: {output:?}");
    let python = String::from_utf8(output.stdout)?.trim().to_owned();
    write_agent(
        dir,
        &format!(
            r#"#!{python}
"""Stand-in for `buildkite-agent oidc request-token`."""
import json, os, sys, urllib.error, urllib.request

args = sys.argv[1:]
if args[:2] != ["oidc", "request-token"]:
    sys.exit("buildkite-agent stand-in: unexpected arguments %r" % args)
audience, claims, rest = None, [], args[2:]
while rest:
    if len(rest) < 2:
        sys.exit("flag needs an argument: %s" % rest[0])
    flag, value, rest = rest[0], rest[1], rest[2:]
    if flag == "--audience":
        audience = value
    elif flag == "--claim":
        claims.extend(claim for claim in value.split(",") if claim)
    else:
        sys.exit("flag provided but not defined: %s" % flag)
endpoint = os.environ.get("BUILDKITE_AGENT_ENDPOINT", "https://agent.buildkite.com/v3")
body = {{}}
if audience is not None:
    body["audience"] = audience
if claims:
    body["claims"] = claims
request = urllib.request.Request(
    "%s/jobs/%s/oidc/tokens" % (endpoint.rstrip("/"), os.environ["BUILDKITE_JOB_ID"]),
    data=json.dumps(body).encode(),
    method="POST",
    headers={{
        "Authorization": "Token " + os.environ.get("BUILDKITE_AGENT_ACCESS_TOKEN", ""),
        "Content-Type": "application/json",
    }},
)
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(json.load(response)["token"])
except urllib.error.HTTPError as error:
    sys.exit("fatal: failed to get OIDC token: %s %s" % (error.code, error.read().decode()))
"#
        ),
    )
}

/// The environment of a Buildkite job whose agent API is `api` and whose PATH starts with
/// `bin` (where the tests put their `buildkite-agent`).
#[cfg(unix)]
pub fn buildkite_env(api: &FakeServer, bin: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("BUILDKITE".into(), "true".into()),
        (
            "BUILDKITE_AGENT_ENDPOINT".into(),
            format!("{}/v3", api.url()),
        ),
        (
            "BUILDKITE_AGENT_ACCESS_TOKEN".into(),
            BUILDKITE_AGENT_ACCESS_TOKEN.into(),
        ),
        ("BUILDKITE_JOB_ID".into(), BUILDKITE_JOB_ID.into()),
        ("BUILDKITE_ORGANIZATION_SLUG".into(), "acme".into()),
        ("BUILDKITE_PIPELINE_SLUG".into(), "release".into()),
        ("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())),
    ]
}
