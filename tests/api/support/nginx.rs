//! nginx on 127.0.0.1 as a round-robin load balancer in front of several instances: a config,
//! pid file, logs and temp folders in a temp dir, run in the foreground (`daemon off`), so that
//! it runs as root or as any other user.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::process::Spawned;

pub struct Nginx {
    pub port: u16,
    pub base_url: String,
    dir: tempfile::TempDir,
    process: Option<Spawned>,
}

/// A free port on 127.0.0.1, for a server that must know its address before it starts.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Nginx {
    /// Starts nginx on `port`, spreading requests over `upstreams` (ports on 127.0.0.1) in
    /// turn. A request that cannot reach an instance (connection refused or reset, timeout) is
    /// passed to the next one, except for `POST`, `PUT` and the like, which nginx never sends
    /// twice. The access log records which upstream answered each request.
    pub async fn start(port: u16, upstreams: &[u16]) -> anyhow::Result<Nginx> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        // As root, nginx's workers would switch to `nobody`, who cannot write in this folder.
        let user = if std::fs::metadata(root)?.uid() == 0 {
            "user root;"
        } else {
            ""
        };
        let servers: String = upstreams
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=60s;\n"))
            .collect();
        let path = |name: &str| root.join(name).display().to_string();
        let config = format!(
            r#"{user}
worker_processes 1;
pid {pid};
error_log {error_log} info;
events {{ worker_connections 512; }}
http {{
  log_format upstream '$request_method $uri $status $upstream_addr $upstream_status';
  access_log {access_log} upstream;
  client_body_temp_path {body};
  proxy_temp_path {proxy};
  fastcgi_temp_path {fastcgi};
  uwsgi_temp_path {uwsgi};
  scgi_temp_path {scgi};
  client_max_body_size 12m;
  upstream wharf {{
{servers}  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://wharf;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
    }}
  }}
}}
"#,
            pid = path("nginx.pid"),
            error_log = path("error.log"),
            access_log = path("access.log"),
            body = path("body"),
            proxy = path("proxy"),
            fastcgi = path("fastcgi"),
            uwsgi = path("uwsgi"),
            scgi = path("scgi"),
        );
        let config_path = root.join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let mut command = Command::new(nginx_binary()?);
        command
            .arg("-p")
            .arg(root)
            .arg("-e")
            .arg(root.join("error.log"))
            .arg("-c")
            .arg(&config_path)
            .args(["-g", "daemon off;"]);
        let process = Spawned::start(command).context("cannot start nginx")?;
        let nginx = Nginx {
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            dir,
            process: Some(process),
        };
        nginx.wait_until_listening().await?;
        Ok(nginx)
    }

    async fn wait_until_listening(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!(
                    "nginx did not listen on port {} within 20 s:\n{}",
                    self.port,
                    self.error_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The access log: one line per request, `METHOD URI STATUS UPSTREAM(S) UPSTREAM-STATUS(ES)`.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("nginx.pid")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // A fast shutdown of the master, which takes its worker with it (a SIGKILL would
        // leave the worker running).
        if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
            drop(Command::new("kill").args(["-TERM", pid.trim()]).status());
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.pid_file().exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        drop(self.process.take());
    }
}

/// `nginx` from PATH or its usual places (sbin folders are not on every user's PATH).
fn nginx_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|candidate| Path::new(candidate).is_file())
        .context("nginx is not installed (scripts/test.sh installs it; or `apt-get install nginx`)")
}
