//! Varnish with the xkey module (varnish-modules), which the example service's
//! `tests/varnish.rs` starts in front of the service.
//!
//! When `varnishd` is missing, or cannot load xkey, xtask installs Debian's `varnish` and
//! `varnish-modules` with `apt-get install` (as CI does: it runs as root, with the Debian
//! registry reachable), refreshing the package lists when the first attempt fails. On a
//! cold CI machine that adds about 20 s (17 s install, 2.5 s `apt-get update`, measured on
//! Debian 12). Where a container's `policy-rc.d` allows services to start, the package
//! also starts the system's Varnish on ports 6081/6082; the tests use ports of their own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use towerkit_test_support::servers::Varnish;

use crate::{Result, apt};

/// The Debian packages: Varnish itself, and the modules that bring xkey.
const PACKAGES: [&str; 2] = ["varnish", "varnish-modules"];

/// A `varnishd` that loads xkey: `VARNISHD` when set, else the installed one, installed
/// now if needed.
pub(crate) fn ensure() -> Result<PathBuf> {
    if let Some(varnishd) = Varnish::find().filter(|varnishd| loads_xkey(varnishd)) {
        return Ok(varnishd);
    }
    if let Some(path) = std::env::var_os("VARNISHD") {
        return Err(format!(
            "VARNISHD={} does not compile a VCL importing xkey",
            Path::new(&path).display()
        ));
    }
    eprintln!(
        "xtask: Varnish with the xkey module is missing; installing Debian's `{}` with apt-get",
        PACKAGES.join("` and `")
    );
    let started = Instant::now();
    let installed = apt::install(&PACKAGES);
    let varnishd = Varnish::find().filter(|varnishd| loads_xkey(varnishd));
    match varnishd {
        Some(varnishd) if installed => {
            eprintln!("xtask: Varnish installed in {:.1?}", started.elapsed());
            Ok(varnishd)
        }
        _ => Err(format!(
            "Varnish with the xkey module is not installed and `apt-get install {}` failed: \
             install them (Debian/Ubuntu: `apt-get install {0}`; elsewhere Varnish 6 or 7 \
             and varnish-modules) or set VARNISHD to a varnishd that finds the xkey module",
            PACKAGES.join(" ")
        )),
    }
}

/// Whether `varnishd` compiles a VCL importing xkey (`-C`: compile only, about a second):
/// it runs, finds a C compiler, and finds the module.
fn loads_xkey(varnishd: &Path) -> bool {
    let dir = std::env::temp_dir().join(format!("xtask-varnish-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return false;
    }
    let vcl = dir.join("check.vcl");
    let compiled = std::fs::write(
        &vcl,
        "vcl 4.1;\nimport xkey;\nbackend default { .host = \"127.0.0.1\"; }\n",
    )
    .is_ok()
        && Command::new(varnishd)
            .arg("-C")
            .arg("-n")
            .arg(dir.join("work"))
            .arg("-f")
            .arg(&vcl)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let _ = std::fs::remove_dir_all(&dir);
    compiled
}
