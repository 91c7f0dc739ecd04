//! `wharf dev`: the fake GitHub and the registry, on loopback only.

use std::process::Command;

#[test]
fn dev_mode_refuses_to_listen_beyond_loopback() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("dev")
        .env("WHARF_BIND", "0.0.0.0:0")
        .env("WHARF_DATA_DIR", dir.path())
        .env_remove("WHARF_DATABASE_URL")
        .env("WHARF_LOG", "warn")
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only listens on loopback"), "{stderr}");
    Ok(())
}
