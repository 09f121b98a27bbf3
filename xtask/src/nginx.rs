//! nginx, which `cargo xtask load peers` runs as a caching reverse proxy (`proxy_cache`) to
//! compare the example cache proxy with.
//!
//! When `nginx` is missing, xtask installs Debian's `nginx` package with `apt-get install`
//! (refreshing the package lists when the first attempt fails). Where a container's
//! `policy-rc.d` allows services to start, the package also starts the system's nginx on
//! port 80; the load run uses ports and a prefix directory of its own.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Result, apt};

/// The Debian package (1.22 on Debian 12): nginx with the proxy and cache modules.
const PACKAGE: &str = "nginx";

/// An `nginx` that runs: `NGINX` when set, else the installed one, installed now if needed.
pub(crate) fn ensure() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("NGINX") {
        let nginx = PathBuf::from(path);
        if runs(&nginx) {
            return Ok(nginx);
        }
        return Err(format!("NGINX={} does not run `-v`", nginx.display()));
    }
    if let Some(nginx) = find().filter(|nginx| runs(nginx)) {
        return Ok(nginx);
    }
    eprintln!("xtask: nginx is missing; installing Debian's `{PACKAGE}` with apt-get");
    let started = Instant::now();
    let installed = apt::install(&[PACKAGE]);
    match find().filter(|nginx| runs(nginx)) {
        Some(nginx) if installed => {
            eprintln!("xtask: nginx installed in {:.1?}", started.elapsed());
            Ok(nginx)
        }
        _ => Err(format!(
            "nginx is not installed and `apt-get install {PACKAGE}` failed: install it \
             (Debian/Ubuntu: `apt-get install {PACKAGE}`) or set NGINX to an nginx binary"
        )),
    }
}

/// `nginx` on `PATH`, or in `/usr/sbin` (not on a non-root user's `PATH` on Debian).
fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("nginx"))
        .find(|path| path.is_file())
}

fn runs(nginx: &std::path::Path) -> bool {
    Command::new(nginx)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
