//! The `wharf` binary's command line, run as a user would.

use std::process::{Command, Output};

fn wharf(data_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .env("WHARF_DATA_DIR", data_dir)
        .env_remove("WHARF_DATABASE_URL")
        .env("WHARF_LOG", "warn")
        .output()
        .expect("run wharf")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn admin_commands_create_users_and_tokens_and_revoke_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = wharf(dir.path(), &["migrate"]);
    assert!(out.status.success(), "{out:?}");

    let out = wharf(
        dir.path(),
        &[
            "admin",
            "user",
            "add",
            "alice",
            "--github-id",
            "42",
            "--email",
            "a@example.com",
        ],
    );
    assert!(out.status.success(), "{out:?}");

    let out = wharf(
        dir.path(),
        &[
            "admin",
            "token",
            "create",
            "--user",
            "alice",
            "--scope",
            "publish-new",
            "--crate",
            "foo-*",
            "--expires-in",
            "30d",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("wharf_") && last.len() == 70,
        "token alone on the last line: {text}"
    );
    assert!(text.contains("created token 1"), "{text}");

    let out = wharf(dir.path(), &["admin", "token", "revoke", "1"]);
    assert!(out.status.success(), "{out:?}");
    let out = wharf(dir.path(), &["admin", "token", "revoke", "1"]);
    assert!(!out.status.success(), "revoking twice fails");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no live token with id 1"));
    Ok(())
}

#[test]
fn bad_input_fails_with_a_message_on_stderr() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (args, expected) in [
        (
            &["admin", "token", "create", "--user", "nobody"][..],
            "no user `nobody`",
        ),
        (
            &[
                "admin", "token", "create", "--user", "x", "--scope", "publish",
            ][..],
            "unknown token scope `publish`",
        ),
        (
            &["admin", "user", "add", "bad login"][..],
            "not a valid login",
        ),
        // The token rules are the settings page's (one service), reported by flag.
        (
            &[
                "admin",
                "token",
                "create",
                "--user",
                "x",
                "--crate",
                "bad name!",
            ][..],
            "--crate: invalid crate scope `bad name!`",
        ),
        (
            &[
                "admin",
                "token",
                "create",
                "--user",
                "x",
                "--expires-in",
                "0s",
            ][..],
            "--expires-in: the expiry must be in the future",
        ),
    ] {
        let out = wharf(dir.path(), args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .env("WHARF_BIND", "nonsense")
        .env("WHARF_DATA_DIR", dir.path())
        .arg("migrate")
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("WHARF_BIND"));
    Ok(())
}

#[test]
fn help_works_everywhere() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["admin", "token", "create", "--help"],
        &["admin", "user", "add", "--help"],
        &["admin", "check", "--help"],
    ] {
        let out = wharf(dir.path(), args);
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage"), "{args:?}");
    }
    Ok(())
}

#[test]
fn token_create_help_says_what_a_token_may_do_by_default() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = wharf(dir.path(), &["admin", "token", "create", "--help"]);
    assert!(out.status.success());
    let help = stdout(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for default in [
        "Without --scope the token has all of them",
        "Without --crate the token acts on every crate its user may act on",
        "Without --expires-in the token does not expire",
    ] {
        assert!(help.contains(default), "{default:?} not in {help}");
    }
    Ok(())
}

#[test]
fn an_unknown_required_metadata_field_stops_the_server_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("serve")
        .env("WHARF_BIND", "127.0.0.1:0")
        .env("WHARF_DATA_DIR", dir.path())
        .env_remove("WHARF_DATABASE_URL")
        .env("WHARF_REQUIRED_METADATA", "description,licence")
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WHARF_REQUIRED_METADATA: unknown metadata field `licence`; the fields a registry can require are: description, license,"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn bad_mail_settings_stop_the_server_at_start_and_bad_addresses_are_refused() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    for (variable, value, expected) in [
        (
            "WHARF_SMTP_URL",
            "mail.example.com",
            "WHARF_SMTP_URL is not a URL; use smtp://host:port or smtps://user:password@host:port",
        ),
        (
            "WHARF_SMTP_URL",
            "imap://mail.example.com",
            "WHARF_SMTP_URL: the scheme `imap` is not supported",
        ),
        (
            "WHARF_MAIL_FROM",
            "wharf at example",
            "WHARF_MAIL_FROM: `wharf at example` is not an email address",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .arg("serve")
            .env("WHARF_BIND", "127.0.0.1:0")
            .env("WHARF_DATA_DIR", dir.path())
            .env_remove("WHARF_DATABASE_URL")
            .env(variable, value)
            .output()?;
        assert!(!out.status.success(), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{variable}={value}: {stderr}");
    }
    let out = wharf(
        dir.path(),
        &[
            "admin",
            "user",
            "add",
            "alice",
            "--email",
            "alice(at)example",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("`alice(at)example` is not a valid email address")
    );
    let out = wharf(
        dir.path(),
        &[
            "admin",
            "user",
            "add",
            "alice",
            "--email",
            "alice@example.com",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn logs_written_to_a_pipe_carry_no_colour_codes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    command
        .arg("serve")
        .env("WHARF_BIND", "127.0.0.1:0")
        .env("WHARF_DATA_DIR", dir.path())
        .env_remove("WHARF_DATABASE_URL")
        .env_remove("NO_COLOR")
        .env("WHARF_LOG", "info");
    let mut server = crate::support::process::Spawned::start(command)?;
    server.wait_for("listening").await?;
    let log = server.stderr();
    assert!(
        !log.contains('\u{1b}'),
        "a pipe gets no escape codes: {log:?}"
    );
    let port = log
        .lines()
        .find(|line| line.contains("listening"))
        .and_then(|line| line.rsplit("port=").next())
        .and_then(|port| port.trim().parse::<u16>().ok())
        .expect("the port in the `listening` line");
    let health = reqwest::get(format!("http://127.0.0.1:{port}/health")).await?;
    assert_eq!(health.status(), 200);
    server.wait_for("/health").await?;

    let (_, stderr) = server.stop()?;
    assert!(stderr.contains("starting"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "a pipe gets no escape codes: {stderr:?}"
    );
    Ok(())
}
