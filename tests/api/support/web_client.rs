//! The web app as a browser without JavaScript sees it: a client that keeps the session
//! cookie, logs in through the fake GitHub, posts forms with the CSRF token, and reads pages
//! with CSS selectors.

use std::sync::Mutex;

use super::TestApp;
use super::fake_idp::{FakeIdp, Provider};
use anyhow::Context;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use scraper::{Html, Selector};

/// A registry whose GitHub (login, REST API and Actions OIDC issuer) is the fake.
pub async fn spawn_with_github() -> anyhow::Result<(TestApp, FakeIdp)> {
    let github = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder()
        .github_login(&github)
        .github_idp(&github)
        .spawn()
        .await;
    Ok((app, github))
}

/// A fetched page.
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }

    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    /// The trimmed text of every element matching `selector`.
    pub fn texts(&self, selector: &str) -> Vec<String> {
        let selector = Selector::parse(selector).expect("a valid selector");
        self.html()
            .select(&selector)
            .map(|e| {
                e.text()
                    .collect::<String>()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    pub fn text(&self, selector: &str) -> String {
        self.texts(selector).join(" ")
    }

    pub fn count(&self, selector: &str) -> usize {
        self.texts(selector).len()
    }

    /// The attribute of the first element matching `selector`.
    pub fn attr(&self, selector: &str, attr: &str) -> Option<String> {
        let selector = Selector::parse(selector).expect("a valid selector");
        self.html()
            .select(&selector)
            .next()
            .and_then(|e| e.value().attr(attr).map(str::to_owned))
    }
}

/// A browser without JavaScript: keeps the session cookie, follows nothing by itself.
pub struct WebClient {
    pub base_url: String,
    client: reqwest::Client,
    cookie: Mutex<Option<String>>,
    /// Ignores `Set-Cookie` (see [`WebClient::copy`]).
    frozen: bool,
}

impl WebClient {
    pub fn new(app: &TestApp) -> WebClient {
        WebClient {
            base_url: app.base_url.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookie: Mutex::new(None),
            frozen: false,
        }
    }

    /// Another client holding a copy of this one's session cookie, as a thief would: it keeps
    /// sending that cookie whatever the server answers.
    pub fn copy(&self) -> WebClient {
        self.copy_to(&self.base_url)
    }

    /// [`WebClient::copy`], sending to another instance (at `base_url`) of the registry.
    pub fn copy_to(&self, base_url: &str) -> WebClient {
        WebClient {
            base_url: base_url.to_owned(),
            client: self.client.clone(),
            cookie: Mutex::new(self.cookie()),
            frozen: true,
        }
    }

    pub fn cookie(&self) -> Option<String> {
        self.cookie.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base_url)
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Page> {
        let request = match self.cookie() {
            Some(cookie) => request.header("Cookie", cookie),
            None => request,
        };
        let response = request.send().await?;
        for value in response.headers().get_all(SET_COOKIE) {
            let value = value.to_str()?;
            let pair = value.split(';').next().unwrap_or_default().to_owned();
            if pair.starts_with("wharf_session=") && !self.frozen {
                *self.cookie.lock().unwrap() = if pair == "wharf_session=" {
                    None
                } else {
                    Some(pair)
                };
            }
        }
        Ok(Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await?,
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Page> {
        self.send(self.client.get(self.url(path))).await
    }

    /// Posts a form as it is, without adding the CSRF token.
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> anyhow::Result<Page> {
        self.send(self.client.post(self.url(path)).form(fields))
            .await
    }

    /// Posts a form with this session's CSRF token, as the page's form would.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> anyhow::Result<Page> {
        let token = self.csrf_token().await?;
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// The CSRF token, from the `<meta name="csrf-token">` of the dashboard.
    pub async fn csrf_token(&self) -> anyhow::Result<String> {
        let page = self.get("/me").await?;
        page.attr("meta[name=csrf-token]", "content")
            .context("no CSRF token: is the client logged in?")
    }

    /// An API request carrying the session cookie (and nothing else).
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, self.url(path));
        match self.cookie() {
            Some(cookie) => request.header("Cookie", cookie),
            None => request,
        }
    }
}

/// Starts the GitHub login; answers the fake's authorize page (as `login`); returns the
/// callback URL GitHub sends the browser back to.
pub async fn authorize_at_github(web: &WebClient, login: &str) -> anyhow::Result<String> {
    authorize_at_github_from(web, "/login/github?next=/me", login).await
}

/// [`authorize_at_github`], starting at `start` (the login page's link).
pub async fn authorize_at_github_from(
    web: &WebClient,
    start: &str,
    login: &str,
) -> anyhow::Result<String> {
    let start = web.get(start).await?;
    anyhow::ensure!(start.status == 303, "login start: {}", start.status);
    let authorize_url = start.location().context("a redirect to GitHub")?.to_owned();
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form_page = plain.get(&authorize_url).send().await?.text().await?;
    let doc = Html::parse_document(&form_page);
    let input = Selector::parse("form input[type=hidden]").expect("selector");
    let mut fields: Vec<(String, String)> = doc
        .select(&input)
        .filter_map(|e| {
            Some((
                e.value().attr("name")?.to_owned(),
                e.value().attr("value")?.to_owned(),
            ))
        })
        .collect();
    fields.push(("login".to_owned(), login.to_owned()));
    let github = url::Url::parse(&authorize_url)?;
    let post_url = github.join("/login/oauth/authorize")?;
    let answer = plain.post(post_url).form(&fields).send().await?;
    anyhow::ensure!(answer.status() == 302, "authorize: {}", answer.status());
    Ok(answer
        .headers()
        .get(LOCATION)
        .context("a redirect back")?
        .to_str()?
        .to_owned())
}

/// A client logged in as `login` through the fake GitHub.
pub async fn log_in(app: &TestApp, login: &str) -> anyhow::Result<WebClient> {
    let web = WebClient::new(app);
    let callback = authorize_at_github(&web, login).await?;
    let back = web.get(&callback).await?;
    anyhow::ensure!(
        back.status == 303,
        "login callback: {} {}",
        back.status,
        back.body
    );
    Ok(web)
}
