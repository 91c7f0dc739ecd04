use crate::support::web_client::WebClient;
use crate::support::{CrateBuilder, TestApp};

#[tokio::test]
async fn the_crate_page_shows_the_sanitised_readme_versions_owners_and_install_lines()
-> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("shown", "1.0.0").readme("# Old"))
        .await;
    app.publish_ok(
        &token,
        &CrateBuilder::new("shown", "1.1.0").readme(
            "# Shown\n\nSome *emphasis*.\n\n<script>alert('x')</script>\n\n<a href=\"javascript:alert(1)\" onclick=\"x()\">click</a>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        ),
    )
    .await;
    let page = WebClient::new(&app).get("/crates/shown").await?;
    assert_eq!(page.status, 200);
    assert_eq!(page.text(".crate-header h1"), "shown");
    assert_eq!(page.text("#max-version"), "1.1.0");
    assert_eq!(
        page.text(".readme h3"),
        "Shown",
        "README headings sit under the page's own"
    );
    assert_eq!(page.count("h1"), 1);
    assert_eq!(page.text(".readme em"), "emphasis");
    assert_eq!(page.count(".readme table th"), 2);
    assert_eq!(page.count("script"), 0);
    assert!(!page.body.contains("javascript:"));
    assert!(!page.body.contains("onclick"));
    assert_eq!(
        page.texts("#versions tbody td:first-child"),
        vec!["1.1.0", "1.0.0"]
    );
    assert_eq!(page.texts("#owners li"), vec!["alice"]);
    let base = app.config().base_url();
    assert_eq!(
        page.text("#index-line"),
        format!("[registries.wharf] index = \"sparse+{base}/index/\"")
    );
    assert_eq!(
        page.text("#dependency-line"),
        "[dependencies] shown = { version = \"1.1.0\", registry = \"wharf\" }"
    );
    assert_eq!(
        page.count("a[href='/crates/shown/settings']"),
        0,
        "not an owner"
    );
    Ok(())
}

#[tokio::test]
async fn other_spellings_redirect_and_unknown_crates_are_404() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let token = app.token("alice");
    app.publish_ok(&token, &CrateBuilder::new("My-Crate", "1.0.0"))
        .await;
    let web = WebClient::new(&app);
    let page = web.get("/crates/my_crate").await?;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/crates/My-Crate"));
    let missing = web.get("/crates/nope").await?;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.text(".error-detail"), "crate `nope` does not exist");
    Ok(())
}
