//! End to end in a real headless Chromium, driven through WebDriver (chromedriver): log in
//! through the fake GitHub, create an API token, add a GitHub trusted publisher, publish through
//! the Trusted Publishing exchange, read the public history logged out, remove the publisher,
//! and require Trusted Publishing. Screenshots of the main pages go to `docs/screenshots/` when
//! `WHARF_UPDATE_SCREENSHOTS=1`, else to a temporary folder.
//!
//! Needs Debian's `chromium` and `chromium-driver`; a missing one fails the test (never a skip).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use super::history::trusted_publish;
use crate::support::CrateBuilder;
use crate::support::web_client::spawn_with_github;

const INSTALL_HINT: &str = "the browser tests need Chromium and its WebDriver: apt-get install -y chromium chromium-driver (scripts/test.sh installs them)";

/// chromedriver on a free loopback port; killed when dropped.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([
            PathBuf::from("/usr/bin"),
            PathBuf::from("/usr/lib/chromium"),
        ])
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

impl ChromeDriver {
    fn start() -> anyhow::Result<ChromeDriver> {
        let driver = find_program(&["chromedriver"])
            .with_context(|| format!("chromedriver not found; {INSTALL_HINT}"))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {}; {INSTALL_HINT}", driver.display()))?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("chromedriver did not start listening on 127.0.0.1:{port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(ChromeDriver { child, port })
    }
}

async fn browser(driver: &ChromeDriver, profile: &Path) -> anyhow::Result<Client> {
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"])
        .with_context(|| format!("Chromium not found; {INSTALL_HINT}"))?;
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .context("cannot start a Chromium session through chromedriver")
}

struct Screenshots {
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Screenshots {
    fn new() -> anyhow::Result<Screenshots> {
        if std::env::var("WHARF_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
            std::fs::create_dir_all(&dir)?;
            Ok(Screenshots { dir, _temp: None })
        } else {
            let temp = tempfile::tempdir()?;
            Ok(Screenshots {
                dir: temp.path().to_owned(),
                _temp: Some(temp),
            })
        }
    }

    async fn take(&self, client: &Client, name: &str) -> anyhow::Result<()> {
        let png = client.screenshot().await?;
        anyhow::ensure!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(self.dir.join(format!("{name}.png")), png)?;
        Ok(())
    }
}

async fn text(client: &Client, css: &str) -> anyhow::Result<String> {
    Ok(client.find(Locator::Css(css)).await?.text().await?)
}

async fn click(client: &Client, css: &str) -> anyhow::Result<()> {
    client
        .find(Locator::Css(css))
        .await
        .with_context(|| format!("no element {css}"))?
        .click()
        .await?;
    Ok(())
}

/// Clicks something that loads a new page (a link, a form's button) and waits for the new page
/// to be loaded, so later look-ups never see the old one.
async fn click_and_wait(client: &Client, css: &str) -> anyhow::Result<()> {
    client
        .execute("window.__wharfOldPage = true; return null;", vec![])
        .await?;
    click(client, css).await?;
    let started = Instant::now();
    loop {
        let loaded = client
            .execute(
                "return !window.__wharfOldPage && document.readyState === 'complete';",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if loaded {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!("clicking {css} did not load a new page");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fill(client: &Client, css: &str, value: &str) -> anyhow::Result<()> {
    let input = client.find(Locator::Css(css)).await?;
    input.clear().await?;
    input.send_keys(value).await?;
    Ok(())
}

async fn log_in(client: &Client, base: &str, login: &str) -> anyhow::Result<()> {
    client.goto(&format!("{base}/login")).await?;
    click_and_wait(client, "#login-github").await?;
    // The fake GitHub's authorize page.
    fill(client, "#login", login).await?;
    click_and_wait(client, "#authorize").await?;
    anyhow::ensure!(
        text(client, "#nav-me").await? == login,
        "logged in as {login}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_owner_sets_up_trusted_publishing_in_a_real_browser() -> anyhow::Result<()> {
    let driver = ChromeDriver::start().expect(INSTALL_HINT);
    let profile = tempfile::tempdir()?;
    let client = browser(&driver, profile.path()).await?;
    let result = scenario(&client).await;
    client.close().await?;
    result
}

async fn scenario(client: &Client) -> anyhow::Result<()> {
    let (app, github) = spawn_with_github().await?;
    let base = app.base_url.clone();
    let shots = Screenshots::new()?;

    // Log in through the fake GitHub.
    log_in(client, &base, "alice").await?;
    assert_eq!(client.current_url().await?.path(), "/me");
    assert_eq!(text(client, ".flash").await?, "Logged in as alice.");

    // Create an API token; it is shown once.
    client.goto(&format!("{base}/settings/tokens")).await?;
    fill(client, "#token-name", "laptop").await?;
    click(client, "input[name=scope][value=publish-new]").await?;
    click(client, "input[name=scope][value=publish-update]").await?;
    click_and_wait(client, "#create-token button[type=submit]").await?;
    let token = text(client, "#new-token-value").await?;
    assert!(token.starts_with("wharf_"), "{token}");
    client.goto(&format!("{base}/settings/tokens")).await?;
    assert!(client.find(Locator::Css("#new-token")).await.is_err());
    shots.take(client, "tokens").await?;

    // Publish a first version with it.
    let readme =
        "# widget\n\nA small crate published to **Wharf**.\n\n```rust\nwidget::hello();\n```\n";
    app.publish_ok(&token, &CrateBuilder::new("widget", "1.0.0").readme(readme))
        .await;

    // Add a GitHub trusted publisher through the settings form.
    client
        .goto(&format!("{base}/crates/widget/settings"))
        .await?;
    fill(client, "#gh-owner", "octo-org").await?;
    fill(client, "#gh-repo", "widget").await?;
    fill(client, "#gh-workflow", "release.yml").await?;
    fill(client, "#gh-environment", "release").await?;
    click_and_wait(client, "#add-github button[type=submit]").await?;
    assert!(
        text(client, ".flash")
            .await?
            .contains("Added the trusted publisher")
    );
    assert!(
        text(client, "#github-publishers")
            .await?
            .contains("octo-org/widget")
    );
    shots.take(client, "settings").await?;

    // CI publishes 1.1.0 through the Trusted Publishing exchange.
    trusted_publish(
        &app,
        &github,
        &CrateBuilder::new("widget", "1.1.0").readme(readme),
    )
    .await?;

    // Logged out, anyone sees who published what, and from which run.
    click_and_wait(client, "#logout").await?;
    client
        .goto(&format!("{base}/crates/widget/history"))
        .await?;
    assert!(client.find(Locator::Css("#nav-login")).await.is_ok());
    let history = text(client, "#history").await?;
    assert!(history.contains("octocat via GitHub Actions"), "{history}");
    assert!(history.contains("release.yml"), "{history}");
    let run = client
        .find(Locator::Css("a.run-link"))
        .await?
        .attr("href")
        .await?
        .unwrap_or_default();
    assert!(
        run.ends_with("/octo-org/widget/actions/runs/4242/attempts/1"),
        "{run}"
    );
    shots.take(client, "history").await?;
    client.goto(&format!("{base}/crates/widget")).await?;
    assert_eq!(text(client, "#max-version").await?, "1.1.0");
    shots.take(client, "crate").await?;
    client.goto(&format!("{base}/")).await?;
    shots.take(client, "home").await?;
    client.set_window_size(390, 844).await?;
    client
        .goto(&format!("{base}/crates/widget/history"))
        .await?;
    shots.take(client, "history-phone").await?;
    client.set_window_size(1280, 1000).await?;

    // Back as the owner: remove the publisher, with the confirmation step.
    log_in(client, &base, "alice").await?;
    client
        .goto(&format!("{base}/crates/widget/settings"))
        .await?;
    click_and_wait(client, "#github-publishers a.remove-publisher").await?;
    assert!(
        text(client, "#publisher-description")
            .await?
            .contains("octo-org/widget")
    );
    click_and_wait(client, "#confirm-remove button[type=submit]").await?;
    assert!(
        text(client, ".flash")
            .await?
            .contains("Removed the trusted publisher")
    );
    assert!(
        client
            .find(Locator::Css("#github-publishers"))
            .await
            .is_err()
    );

    // Require Trusted Publishing: with no publisher left, the page warns.
    click_and_wait(client, "#trustpub-only-form button[type=submit]").await?;
    assert!(
        text(client, "#trustpub-only-status")
            .await?
            .starts_with("On")
    );
    assert!(
        text(client, "#no-publisher-warning")
            .await?
            .contains("Nobody can publish")
    );
    shots.take(client, "settings-required").await?;
    let (_, info) = app.get_json("/api/v1/crates/widget").await;
    assert_eq!(info["crate"]["trustpub_only"], true);
    Ok(())
}

/// `next` values that a lax check lets through and that browsers turn into another site (tabs
/// and newlines are stripped, `\` is read as `/`), plus their encoded forms. `{host}` is another
/// origin (the fake GitHub): a redirect there would be an open redirect.
const HOSTILE_NEXTS: [&str; 16] = [
    "/\t/{host}/",
    "/\n/{host}/",
    "/\r/{host}/",
    "/\t\t/{host}/",
    "/\\{host}/",
    "/\t\\{host}/",
    "\\\\{host}/",
    "//{host}/",
    " //{host}/",
    "/.//{host}/",
    "http://{host}/",
    "/%09/{host}/",
    "/%2f%2f{host}/",
    "/%5c{host}/",
    "%2f%2f{host}/",
    "/\u{3000}/{host}/",
];

#[tokio::test(flavor = "multi_thread")]
async fn a_user_adds_a_pending_publisher_and_ci_publishes_the_first_version_in_a_real_browser()
-> anyhow::Result<()> {
    let driver = ChromeDriver::start().expect(INSTALL_HINT);
    let profile = tempfile::tempdir()?;
    let client = browser(&driver, profile.path()).await?;
    let result = pending_scenario(&client).await;
    client.close().await?;
    result
}

async fn pending_scenario(client: &Client) -> anyhow::Result<()> {
    let (app, github) = spawn_with_github().await?;
    let base = app.base_url.clone();
    let shots = Screenshots::new()?;
    log_in(client, &base, "bob").await?;

    // From the navigation to the page; no pending publisher yet.
    click_and_wait(client, "#nav-pending").await?;
    assert_eq!(
        client.current_url().await?.path(),
        "/settings/pending-publishers"
    );
    assert!(text(client, "#no-pending").await?.contains("no pending"));

    // A bad crate name is shown next to the field, the values kept.
    fill(client, "#pending-github-crate", "not a name").await?;
    fill(client, "#gh-owner", "octo-org").await?;
    fill(client, "#gh-repo", "widget").await?;
    fill(client, "#gh-workflow", "release.yml").await?;
    fill(client, "#gh-environment", "release").await?;
    click_and_wait(client, "#add-pending-github button[type=submit]").await?;
    assert!(
        text(client, "#pending-github-crate-error")
            .await?
            .contains("Invalid crate name")
    );
    fill(client, "#pending-github-crate", "first-light").await?;
    click_and_wait(client, "#add-pending-github button[type=submit]").await?;
    assert!(
        text(client, ".flash")
            .await?
            .contains("Added a pending GitHub Actions publisher for first-light")
    );
    assert_eq!(
        text(client, "#pending-publishers .pending-crate").await?,
        "first-light"
    );
    assert!(
        text(client, "#pending-publishers .expires")
            .await?
            .ends_with("UTC")
    );
    // A second one, for a GitLab project, to remove.
    fill(client, "#pending-gitlab-crate", "second-light").await?;
    fill(client, "#gl-namespace", "acme").await?;
    fill(client, "#gl-project", "widget").await?;
    fill(client, "#gl-workflow", ".gitlab-ci.yml").await?;
    click_and_wait(client, "#add-pending-gitlab button[type=submit]").await?;
    shots.take(client, "pending-publishers").await?;
    click_and_wait(
        client,
        "#pending-publishers button[aria-label^='Remove the pending publisher for second-light']",
    )
    .await?;
    assert!(
        text(client, ".flash")
            .await?
            .contains("Removed the pending GitLab CI publisher for second-light")
    );

    // CI publishes the first version: the crate is bob's, with an ordinary publisher.
    trusted_publish(&app, &github, &CrateBuilder::new("first-light", "0.1.0")).await?;
    client
        .goto(&format!("{base}/settings/pending-publishers"))
        .await?;
    assert!(client.find(Locator::Css("#no-pending")).await.is_ok());
    client
        .goto(&format!("{base}/crates/first-light/settings"))
        .await?;
    assert!(
        text(client, "#github-publishers")
            .await?
            .contains("octo-org/widget")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_next_never_leaves_the_registry() -> anyhow::Result<()> {
    let driver = ChromeDriver::start().expect(INSTALL_HINT);
    let profile = tempfile::tempdir()?;
    let client = browser(&driver, profile.path()).await?;
    let result = hostile_nexts(&client).await;
    client.close().await?;
    result
}

async fn hostile_nexts(client: &Client) -> anyhow::Result<()> {
    let (app, github) = spawn_with_github().await?;
    let base = app.base_url.clone();
    let registry = url::Url::parse(&base)?.origin();
    let other_host = url::Url::parse(github.base_url())?
        .host_str()
        .map(str::to_owned)
        .context("the fake GitHub's host")?;
    let other_port = url::Url::parse(github.base_url())?
        .port()
        .context("the fake GitHub's port")?;
    let host = format!("{other_host}:{other_port}");
    for hostile in HOSTILE_NEXTS {
        let next = hostile.replace("{host}", &host);
        let login_url = format!(
            "{base}/login?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );

        // Returning from the (fake) GitHub login.
        client.goto(&login_url).await?;
        click_and_wait(client, "#login-github").await?;
        fill(client, "#login", "alice").await?;
        click_and_wait(client, "#authorize").await?;
        let after_login = client.current_url().await?;
        assert_eq!(
            after_login.origin(),
            registry,
            "after logging in with next={next:?} the browser left for {after_login}"
        );

        // Already logged in: the login page sends the browser on at once.
        client.goto(&login_url).await?;
        let logged_in = client.current_url().await?;
        assert_eq!(
            logged_in.origin(),
            registry,
            "logged in, /login?next={next:?} sent the browser to {logged_in}"
        );

        // Log out for the next round.
        client.goto(&format!("{base}/")).await?;
        click_and_wait(client, "#logout").await?;
    }
    Ok(())
}
