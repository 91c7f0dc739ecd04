//! A small tmpfs, to fill a disk for real. Mounting needs root (CAP_SYS_ADMIN), as CI has;
//! without it the test fails loudly.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

pub struct SmallTmpfs {
    dir: tempfile::TempDir,
}

impl SmallTmpfs {
    pub fn mount(size: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .context("cannot run `mount`")?;
        if !output.status.success() {
            bail!(
                "this test fills a disk for real by mounting a {size} tmpfs, which needs root (CAP_SYS_ADMIN): {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            eprintln!(
                "could not unmount the tmpfs at {}",
                self.dir.path().display()
            );
        }
    }
}
