//! HTTP/1.1 by hand, for what a normal client cannot do: send part of a body and wait.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a `PUT path` whose head declares `content_length` bytes of body, but sends only
/// `sent` of them, then waits up to `wait` for the server's answer. Returns its status and
/// JSON body; fails if the server does not answer while the body is incomplete.
pub async fn answer_to_partial_put(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    content_length: usize,
    sent: &[u8],
    wait: Duration,
) -> anyhow::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut head = format!(
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {content_length}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(sent).await?;
    stream.flush().await?;

    let response = tokio::time::timeout(wait, read_response(&mut stream))
        .await
        .with_context(|| {
            format!(
                "no answer within {wait:?} while {} of {content_length} body bytes were sent",
                sent.len()
            )
        })??;
    // The rest of the body is never sent; the connection goes with the stream.
    Ok(response)
}

async fn read_response(stream: &mut TcpStream) -> anyhow::Result<(u16, Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before a response head");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .context("status line")?
        .parse()
        .context("status code")?;
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .context("a Content-Length in the response")?;
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed in the response body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length])
        .context("the response body is JSON")?;
    Ok((status, body))
}
