//! Notification mail to crate owners, delivered through the outbox to a real SMTP server on
//! loopback (aiosmtpd, `support::smtp`): who gets what for each change, owners without an
//! address skipped in the audit log, a mail server that goes down and returns (every message
//! arrives, once), two instances on one database (each message once), and mail turned off.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::{Value, json};
use wharf::cli::{UserAdd, add_user};
use wharf::models::{Crate, audit};
use wharf::schema::mail_outbox;

use crate::support::fake_idp::{self, FakeIdp, Provider};
use crate::support::smtp::{Mail, SmtpSink};
use crate::support::web_client::log_in;
use crate::support::{CrateBuilder, TestApp};

fn user_with_email(app: &TestApp, login: &str, email: Option<&str>) {
    add_user(
        &app.app.db,
        &UserAdd {
            login: login.to_owned(),
            github_id: None,
            email: email.map(str::to_owned),
            admin: false,
        },
    )
    .expect("create user");
}

async fn change_owners(app: &TestApp, token: &str, name: &str, add: bool, login: &str) {
    let url = app.url(&format!("/api/v1/crates/{name}/owners"));
    let request = if add {
        app.client.put(url)
    } else {
        app.client.delete(url)
    };
    let response = request
        .header("Authorization", token)
        .json(&json!({ "users": [login] }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// Messages grouped by subject, each with its sorted recipients.
fn by_subject(mails: &[Mail]) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mail in mails {
        groups
            .entry(mail.subject.clone())
            .or_default()
            .extend(mail.rcpt_tos.iter().cloned());
    }
    for recipients in groups.values_mut() {
        recipients.sort();
    }
    groups
}

fn body_of<'a>(mails: &'a [Mail], subject: &str, to: &str) -> &'a str {
    &mails
        .iter()
        .find(|m| m.subject == subject && m.rcpt_tos == [to])
        .unwrap_or_else(|| panic!("no mail `{subject}` to {to}: {mails:#?}"))
        .body
}

/// Each (recipient, subject) once: nothing was delivered twice.
fn assert_no_duplicates(mails: &[Mail]) {
    let mut seen = std::collections::BTreeSet::new();
    for mail in mails {
        assert_eq!(mail.rcpt_tos.len(), 1, "one recipient per message");
        assert!(
            seen.insert((mail.rcpt_tos[0].clone(), mail.subject.clone())),
            "delivered twice: {mail:#?}"
        );
    }
}

fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.app.metrics.encode().expect("metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

const ALICE: &str = "alice@users.noreply.example";
const BOB: &str = "bob@example.com";

#[tokio::test]
async fn owners_hear_of_every_change_with_who_did_it_and_a_link_to_the_settings()
-> anyhow::Result<()> {
    // Arrange: alice logs in through GitHub (her primary verified address is stored), bob
    // has an address, carol has none.
    let sink = SmtpSink::start().await?;
    let github = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder()
        .github_login(&github)
        .github_idp(&github)
        .smtp(&sink)
        .spawn()
        .await;
    let alice_web = log_in(&app, "alice").await?;
    let alice = app.token("alice");
    user_with_email(&app, "bob", Some(BOB));
    user_with_email(&app, "carol", None);
    app.publish_ok(&alice, &CrateBuilder::new("widget", "1.0.0"))
        .await;

    // Act: every kind of change.
    change_owners(&app, &alice, "widget", true, "bob").await;
    change_owners(&app, &alice, "widget", true, "carol").await;
    let config = app.add_github_config(&alice, "widget", None).await;
    let exchange = |run_id: &str| {
        let jwt = github.sign(&github.github_claims(&app.audience(), json!({ "run_id": run_id })));
        let app = &app;
        async move {
            let (status, body) = app.exchange(&jwt).await;
            assert_eq!(status, 200, "{body}");
            body["token"].as_str().unwrap().to_owned()
        }
    };
    let ci = exchange("501").await;
    app.publish_ok(&ci, &CrateBuilder::new("widget", "1.1.0"))
        .await;
    let _second = exchange("502").await;
    let page = alice_web.get("/crates/widget/settings").await?;
    let revoke = page
        .attr("#exchanged-tokens tbody tr:first-child form", "action")
        .expect("a revoke form");
    assert_eq!(alice_web.post(&revoke, &[]).await?.status, 303);
    let patch = app
        .client
        .patch(app.url("/api/v1/crates/widget"))
        .header("Authorization", &alice)
        .json(&json!({ "crate": { "trustpub_only": true } }))
        .send()
        .await?;
    assert_eq!(patch.status(), 200);
    let id = config["github_config"]["id"].as_i64().unwrap();
    let removed = app
        .client
        .delete(app.url(&format!("/api/v1/trusted_publishing/github_configs/{id}")))
        .header("Authorization", &alice)
        .send()
        .await?;
    assert_eq!(removed.status(), 204);
    change_owners(&app, &alice, "widget", false, "bob").await;

    // Assert: each change mailed to alice and bob (bob too when removed), nobody else.
    let mails = sink.wait_for(16).await?;
    assert_no_duplicates(&mails);
    let both = vec![ALICE.to_owned(), BOB.to_owned()];
    let expected: BTreeMap<String, Vec<String>> = [
        "widget: owner bob added",
        "widget: owner carol added",
        "widget: trusted publisher added",
        "widget 1.1.0 published through Trusted Publishing",
        "widget: a Trusted Publishing token was revoked",
        "widget: Trusted Publishing is now required",
        "widget: trusted publisher removed",
        "widget: owner bob removed",
    ]
    .into_iter()
    .map(|subject| (subject.to_owned(), both.clone()))
    .collect();
    assert_eq!(by_subject(&mails), expected);

    let settings_link = format!("{}/crates/widget/settings", app.base_url);
    for mail in &mails {
        assert_eq!(mail.content_type, "text/plain");
        assert_eq!(mail.auto_submitted, "auto-generated");
        assert_eq!(mail.mail_from, "wharf@127.0.0.1");
        assert!(mail.body.contains(&settings_link), "{}", mail.body);
        assert!(mail.body.contains("the crate widget"), "{}", mail.body);
    }
    assert!(body_of(&mails, "widget: owner bob added", BOB).contains("alice made bob an owner"));
    let added = body_of(&mails, "widget: trusted publisher added", ALICE);
    assert!(added.contains("alice added a trusted publisher"), "{added}");
    assert!(
        added.contains("GitHub Actions: octo-org/widget"),
        "the config is named: {added}"
    );
    let published = body_of(
        &mails,
        "widget 1.1.0 published through Trusted Publishing",
        BOB,
    );
    assert!(
        published.contains(&format!("Published by: {}", fake_idp::GITHUB_ACTOR)),
        "{published}"
    );
    assert!(
        published.contains("/octo-org/widget/actions/runs/501/attempts/1"),
        "{published}"
    );
    let revoked = body_of(
        &mails,
        "widget: a Trusted Publishing token was revoked",
        ALICE,
    );
    assert!(revoked.contains("alice revoked"), "{revoked}");
    assert!(
        revoked.contains(&format!("Minted for: {}", fake_idp::GITHUB_ACTOR)),
        "{revoked}"
    );
    assert!(
        revoked.contains("/octo-org/widget/actions/runs/50"),
        "the run: {revoked}"
    );
    assert!(
        body_of(&mails, "widget: trusted publisher removed", BOB)
            .contains("Tokens revoked with it: 1."),
    );
    assert!(
        body_of(&mails, "widget: owner bob removed", BOB)
            .contains("alice removed bob from the owners")
    );

    // carol, an owner without an address from her addition on, is skipped, in the audit log:
    // once for each of the 7 changes after (and including) her own addition.
    let skipped = app.app.db.blocking(|conn| {
        let krate = Crate::by_name(conn, "widget")?.expect("crate");
        Ok(audit::for_crate(conn, krate.id, 1000)?)
    })?;
    let skipped: Vec<Value> = skipped
        .iter()
        .filter(|e| e.action == "mail_skipped")
        .map(|e| serde_json::from_str(&e.detail).unwrap())
        .collect();
    assert_eq!(skipped.len(), 7, "{skipped:#?}");
    assert!(
        skipped
            .iter()
            .all(|d| d["login"] == "carol" && d["reason"] == "no email address")
    );
    assert!(skipped.iter().any(|d| d["event"] == "trusted_publish"));
    // …and visibly, on the settings page's audit log.
    let page = alice_web.get("/crates/widget/settings").await?;
    assert!(
        page.texts("#audit-log tbody tr")
            .iter()
            .any(|row| row.contains("mail skipped")
                && row.contains("login: carol")
                && row.contains("no email address")),
        "{}",
        page.body
    );
    assert_eq!(metric(&app, "wharf_mail_sent_total"), 16.0);
    assert_eq!(metric(&app, "wharf_mail_outbox_backlog"), 0.0);
    Ok(())
}

/// The outbox rows not delivered yet, with their attempts so far.
fn pending_attempts(app: &TestApp) -> anyhow::Result<Vec<i32>> {
    app.app.db.blocking(|conn| {
        Ok(mail_outbox::table
            .filter(mail_outbox::sent_at.is_null())
            .select(mail_outbox::attempts)
            .load::<i32>(conn)?)
    })
}

async fn eventually(
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check()? {
        anyhow::ensure!(Instant::now() < deadline, "not within 30 s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_mail_server_that_is_down_loses_nothing_and_nothing_arrives_twice() -> anyhow::Result<()>
{
    // Arrange
    let mut sink = SmtpSink::start().await?;
    let app = TestApp::builder().smtp(&sink).spawn().await;
    user_with_email(&app, "alice", Some("alice@example.com"));
    for login in ["bob", "carol", "dave"] {
        user_with_email(&app, login, Some(&format!("{login}@example.com")));
    }
    let alice = app.token("alice");
    app.publish_ok(&alice, &CrateBuilder::new("sturdy", "1.0.0"))
        .await;

    // Act: the server goes down; three changes (2 + 3 + 4 messages) are made meanwhile.
    sink.stop()?;
    for login in ["bob", "carol", "dave"] {
        change_owners(&app, &alice, "sturdy", true, login).await;
    }
    // Every message is tried, and tried again, while the server is down.
    eventually("every message failed twice", || {
        let attempts = pending_attempts(&app)?;
        Ok(attempts.len() == 9 && attempts.iter().all(|a| *a >= 2))
    })
    .await?;
    assert!(metric(&app, "wharf_mail_failures_total{outcome=\"retry\"}") >= 18.0);
    assert_eq!(metric(&app, "wharf_mail_outbox_backlog"), 9.0);
    assert!(sink.messages()?.is_empty());
    sink.resume().await?;

    // Assert: all 9 arrive, each once.
    let mails = sink.wait_for(9).await?;
    assert_eq!(mails.len(), 9, "{mails:#?}");
    assert_no_duplicates(&mails);
    let groups = by_subject(&mails);
    assert_eq!(groups["sturdy: owner bob added"].len(), 2);
    assert_eq!(groups["sturdy: owner carol added"].len(), 3);
    assert_eq!(
        groups["sturdy: owner dave added"],
        [
            "alice@example.com",
            "bob@example.com",
            "carol@example.com",
            "dave@example.com"
        ]
    );
    assert_eq!(metric(&app, "wharf_mail_outbox_backlog"), 0.0);
    assert_eq!(metric(&app, "wharf_mail_sent_total"), 9.0);
    Ok(())
}

#[tokio::test]
async fn a_recipient_the_server_refuses_for_good_is_given_up_and_the_others_delivered()
-> anyhow::Result<()> {
    let sink = SmtpSink::start().await?;
    let app = TestApp::builder().smtp(&sink).spawn().await;
    user_with_email(&app, "alice", Some("alice@example.com"));
    user_with_email(&app, "ghost", Some("ghost@rejected.example"));
    let alice = app.token("alice");
    app.publish_ok(&alice, &CrateBuilder::new("bounced", "1.0.0"))
        .await;

    change_owners(&app, &alice, "bounced", true, "ghost").await;

    let mails = sink.wait_for(1).await?;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_tos, ["alice@example.com"]);
    eventually("the refused mail is given up", || {
        Ok(metric(&app, "wharf_mail_failures_total{outcome=\"given_up\"}") == 1.0)
    })
    .await?;
    let (attempts, error) = app.app.db.blocking(|conn| {
        Ok(mail_outbox::table
            .filter(mail_outbox::recipient.eq("ghost@rejected.example"))
            .filter(mail_outbox::failed_at.is_not_null())
            .select((mail_outbox::attempts, mail_outbox::last_error))
            .first::<(i32, Option<String>)>(conn)?)
    })?;
    assert_eq!(attempts, 3, "tried three times before giving up");
    assert!(error.unwrap_or_default().contains("No such user"));
    assert_eq!(
        metric(&app, "wharf_mail_failures_total{outcome=\"retry\"}"),
        2.0
    );
    assert_eq!(metric(&app, "wharf_mail_outbox_backlog"), 0.0);
    Ok(())
}

#[tokio::test]
async fn two_instances_on_one_database_deliver_each_mail_once() -> anyhow::Result<()> {
    // Arrange: two instances sharing a database, both sending to one server, which is down
    // while the mail piles up, so that both senders find it at once when it returns.
    let mut sink = SmtpSink::start().await?;
    let first = TestApp::builder().smtp(&sink).spawn().await;
    let second = TestApp::builder()
        .sharing_database_with(&first)
        .smtp(&sink)
        .spawn()
        .await;
    let logins = ["u1", "u2", "u3", "u4", "u5", "u6", "u7"];
    for login in logins {
        user_with_email(&first, login, Some(&format!("{login}@example.com")));
    }
    let owner = first.token("u1");
    first
        .publish_ok(&owner, &CrateBuilder::new("shared", "1.0.0"))
        .await;
    sink.stop()?;

    // Act: six owners added, through either instance: 2 + 3 + … + 7 = 27 messages.
    for (n, login) in logins[1..].iter().enumerate() {
        let app = if n % 2 == 0 { &first } else { &second };
        change_owners(app, &owner, "shared", true, login).await;
    }
    sink.resume().await?;

    // Assert
    let mails = sink.wait_for(27).await?;
    assert_eq!(mails.len(), 27);
    assert_no_duplicates(&mails);
    let sent = metric(&first, "wharf_mail_sent_total") + metric(&second, "wharf_mail_sent_total");
    assert_eq!(sent, 27.0);
    Ok(())
}

#[tokio::test]
async fn without_an_smtp_server_nothing_is_sent_and_the_audit_log_records() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    user_with_email(&app, "alice", Some("alice@example.com"));
    user_with_email(&app, "bob", Some("bob@example.com"));
    let alice = app.token("alice");
    app.publish_ok(&alice, &CrateBuilder::new("quiet", "1.0.0"))
        .await;
    change_owners(&app, &alice, "quiet", true, "bob").await;

    // The change is in the audit log; its mail is ended as not sent, and does not pile up.
    let actions = app.app.db.blocking(|conn| {
        let krate = Crate::by_name(conn, "quiet")?.expect("crate");
        Ok(audit::for_crate(conn, krate.id, 100)?)
    })?;
    assert!(actions.iter().any(|e| e.action == "owner_add"));
    eventually("the outbox is emptied", || {
        Ok(metric(&app, "wharf_mail_outbox_backlog") == 0.0)
    })
    .await?;
    let ended = app.app.db.blocking(|conn| {
        Ok(mail_outbox::table
            .select((mail_outbox::sent_at.is_null(), mail_outbox::last_error))
            .load::<(bool, Option<String>)>(conn)?)
    })?;
    assert_eq!(ended.len(), 2);
    for (unsent, error) in ended {
        assert!(unsent);
        assert!(error.unwrap_or_default().contains("mail is off"));
    }
    assert_eq!(metric(&app, "wharf_mail_sent_total"), 0.0);
    Ok(())
}

#[tokio::test]
async fn login_stores_the_primary_verified_address_and_admin_addresses_are_checked()
-> anyhow::Result<()> {
    let github = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder().github_login(&github).spawn().await;
    // An operator created alice with an old address; her GitHub login replaces it.
    user_with_email(&app, "alice", Some("old@example.com"));
    log_in(&app, "alice").await?;
    let user = app
        .app
        .db
        .blocking(|conn| Ok(wharf::models::User::by_login(conn, "alice")?))?
        .expect("alice");
    assert_eq!(user.email.as_deref(), Some(ALICE));

    let refused = add_user(
        &app.app.db,
        &UserAdd {
            login: "mallory".to_owned(),
            github_id: None,
            email: Some("not an address".to_owned()),
            admin: false,
        },
    );
    let message = format!("{:#}", refused.expect_err("refused"));
    assert!(message.contains("not a valid email address"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_row_one_sender_claimed_is_not_claimed_by_another_meanwhile() -> anyhow::Result<()> {
    // Arrange: a database with five due rows and no server (so no sender of its own).
    let dir = tempfile::tempdir()?;
    let url = crate::support::test_database_url(&dir)?;
    let db = wharf::db::Database::connect(&wharf::config::DatabaseConfig {
        url: wharf::config::Secret::new(url),
        pool_size: 2,
    })?;
    db.migrate()?;
    let now = wharf::models::now();
    db.blocking(|conn| {
        for n in 0..5 {
            diesel::insert_into(mail_outbox::table)
                .values((
                    mail_outbox::crate_name.eq("contended"),
                    mail_outbox::recipient.eq(format!("u{n}@example.com")),
                    mail_outbox::event.eq("{}"),
                    mail_outbox::created_at.eq(now),
                    mail_outbox::attempts.eq(0),
                    mail_outbox::next_attempt_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok(())
    })?;
    let until = now + chrono::Duration::minutes(5);
    let claim = move |conn: &mut wharf::db::DbConn, lease: &str| {
        wharf::db::write_transaction(conn, |conn| {
            Ok(wharf::mail::outbox::claim(conn, lease, now, until, 10)?)
        })
    };

    // Act: sender A claims and, before it commits, sender B claims too.
    let mut a = db.dedicated_connection()?;
    let mut b = db.dedicated_connection()?;
    let (claimed, started) = std::sync::mpsc::channel();
    let first = std::thread::spawn(move || {
        wharf::db::write_transaction(&mut a, |conn| {
            let rows = wharf::mail::outbox::claim(conn, "a", now, until, 10)?;
            claimed.send(()).expect("signal");
            // B is waiting on the rows (PostgreSQL) or the write lock (SQLite) meanwhile.
            std::thread::sleep(Duration::from_millis(500));
            Ok(rows)
        })
        .map(|rows| rows.len())
        .map_err(|e| e.detail().to_owned())
    });
    started.recv()?;
    let second = claim(&mut b, "b").map_err(|e| anyhow::anyhow!(e.detail().to_owned()))?;
    let first = first.join().expect("thread").map_err(anyhow::Error::msg)?;

    // Assert: A holds all five; B, which ran its claim while A's was open, got none.
    assert_eq!(first, 5);
    assert_eq!(second.len(), 0, "claimed twice: {second:#?}");
    // Once the lease runs out, B may take them over (A died).
    let later = until + chrono::Duration::seconds(1);
    let taken = wharf::db::write_transaction(&mut db.dedicated_connection()?, |conn| {
        Ok(wharf::mail::outbox::claim(
            conn,
            "b",
            later,
            later + chrono::Duration::minutes(5),
            10,
        )?)
    })
    .map_err(|e| anyhow::anyhow!(e.detail().to_owned()))?;
    assert_eq!(taken.len(), 5);
    Ok(())
}

#[tokio::test]
async fn a_pending_publisher_that_creates_its_crate_is_mailed_like_any_publisher_added()
-> anyhow::Result<()> {
    // Arrange: dana adds a pending publisher for a crate that does not exist yet.
    let sink = SmtpSink::start().await?;
    let github = FakeIdp::start(Provider::GitHub);
    let app = TestApp::builder()
        .github_idp(&github)
        .smtp(&sink)
        .spawn()
        .await;
    const DANA: &str = "dana@example.com";
    user_with_email(&app, "dana", Some(DANA));
    let dana = app.token("dana");
    let (status, body) = app
        .post_json(
            "/api/v1/trusted_publishing/github_configs",
            Some(&dana),
            &json!({ "github_config": {
                "crate": "fresh",
                "repository_owner": fake_idp::GITHUB_OWNER,
                "repository_name": fake_idp::GITHUB_REPO,
                "workflow_filename": fake_idp::GITHUB_WORKFLOW,
            }}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["github_config"]["pending"], true);

    // Act: CI publishes the first version through it.
    let jwt = github.sign(&github.github_claims(&app.audience(), json!({ "run_id": "77" })));
    let (status, body) = app.exchange(&jwt).await;
    assert_eq!(status, 200, "{body}");
    let ci = body["token"].as_str().unwrap_or_default().to_owned();
    app.publish_ok(&ci, &CrateBuilder::new("fresh", "0.1.0"))
        .await;

    // Assert: dana, now the owner, hears that the publisher was added and that it published.
    let mails = sink.wait_for(2).await?;
    assert_no_duplicates(&mails);
    let expected: BTreeMap<String, Vec<String>> = [
        "fresh: trusted publisher added",
        "fresh 0.1.0 published through Trusted Publishing",
    ]
    .into_iter()
    .map(|subject| (subject.to_owned(), vec![DANA.to_owned()]))
    .collect();
    assert_eq!(by_subject(&mails), expected);
    let added = body_of(&mails, "fresh: trusted publisher added", DANA);
    assert!(added.contains("dana added a trusted publisher"), "{added}");
    assert!(added.contains("pending publisher"), "{added}");
    assert!(
        added.contains("GitHub Actions: octo-org/widget"),
        "the config is named: {added}"
    );
    Ok(())
}
