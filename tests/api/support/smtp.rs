//! A real SMTP server on loopback for the mail tests: `tests/smtp_sink.py` (aiosmtpd), one per
//! test on a free port, storing each accepted message as a JSON file. It can be stopped and
//! started again on the same port and folder, as a mail server that goes down and returns.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::nginx::free_port;
use super::process::Spawned;

/// One message as the server received it.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub content_type: String,
    pub auto_submitted: String,
    pub body: String,
}

pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    process: Option<Spawned>,
}

impl SmtpSink {
    /// Starts a server on a free port. Fails, loudly, when aiosmtpd is missing.
    pub async fn start() -> anyhow::Result<SmtpSink> {
        let mut sink = SmtpSink {
            port: free_port()?,
            dir: tempfile::tempdir()?,
            process: None,
        };
        sink.resume().await?;
        Ok(sink)
    }

    /// `smtp://127.0.0.1:PORT`, for `WHARF_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server: connections are refused until [`SmtpSink::resume`].
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(process) = self.process.take() {
            process.stop()?;
        }
        Ok(())
    }

    /// Starts the server again on the same port, keeping the messages received so far.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg(self.port.to_string())
            .arg(self.dir.path());
        let mut process = Spawned::start(command).context("cannot run python3")?;
        process.wait_for("ready").await.context(
            "the SMTP server (tests/smtp_sink.py, needs `pip install aiosmtpd`) did not start",
        )?;
        self.process = Some(process);
        Ok(())
    }

    /// Every message received, in arrival order.
    pub fn messages(&self) -> anyhow::Result<Vec<Mail>> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join(name))?;
                Ok(serde_json::from_str(&text)?)
            })
            .collect()
    }

    /// Waits (up to 30 s) until at least `count` messages arrived, then a little longer to
    /// catch any extra (a duplicate) before returning them all.
    pub async fn wait_for(&self, count: usize) -> anyhow::Result<Vec<Mail>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let messages = self.messages()?;
            if messages.len() >= count {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                return self.messages();
            }
            if Instant::now() > deadline {
                bail!(
                    "{} of {count} messages arrived within 30 s: {:#?}",
                    messages.len(),
                    messages
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
