//! Prometheus' `promtool`, which the example service's metrics tests run on `/metrics`
//! (`promtool check metrics`).
//!
//! When it is not on `PATH`, xtask takes it out of Debian's `prometheus` package: `apt-get
//! download` and `dpkg-deb`, into `target/xtask-tools/`. The binary is all the tests need;
//! `apt-get install prometheus` would also add a system user and, on a machine run by
//! systemd, start a Prometheus server.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::{Result, target_dir};

/// The Debian package that ships promtool.
const PACKAGE: &str = "prometheus";

/// A promtool that runs: `PROMTOOL` (a path) when set, else the one on `PATH`, the one a
/// previous run extracted, or one extracted now.
pub(crate) fn ensure() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PROMTOOL") {
        let path = PathBuf::from(path);
        return if runs(&path) {
            Ok(path)
        } else {
            Err(format!("PROMTOOL={} does not run", path.display()))
        };
    }
    if runs("promtool".as_ref()) {
        return Ok(PathBuf::from("promtool"));
    }
    let dir = target_dir().join("xtask-tools");
    let extracted = dir.join("usr/bin/promtool");
    if runs(&extracted) {
        return Ok(extracted);
    }
    eprintln!(
        "xtask: promtool is missing; extracting it from Debian's `{PACKAGE}` package into {}",
        dir.display()
    );
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !download(&dir) {
        // A fresh machine may have no package lists yet.
        let updated = Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .is_ok_and(|s| s.success());
        if !updated || !download(&dir) {
            return Err(missing(&format!("`apt-get download {PACKAGE}` failed")));
        }
    }
    let deb = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PACKAGE) && n.ends_with(".deb"))
        })
        .ok_or_else(|| missing("`apt-get download` left no .deb"))?;
    // Only the one file: `dpkg-deb --fsys-tarfile` streams the package's files to tar.
    let extract = format!(
        "dpkg-deb --fsys-tarfile '{}' | tar -x -C '{}' ./usr/bin/promtool",
        deb.display(),
        dir.display()
    );
    let extracted_ok = Command::new("sh")
        .args(["-c", &extract])
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::fs::remove_file(&deb);
    if extracted_ok && runs(&extracted) {
        Ok(extracted)
    } else {
        Err(missing("extracting it from the package failed"))
    }
}

/// `apt-get download prometheus` into `dir` (no root needed once the package lists exist).
fn download(dir: &std::path::Path) -> bool {
    Command::new("apt-get")
        .args(["download", "-qq", PACKAGE])
        .current_dir(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn runs(promtool: &std::path::Path) -> bool {
    Command::new(promtool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn missing(why: &str) -> String {
    format!(
        "promtool is not installed and {why}: install it (Debian/Ubuntu: `apt-get install \
         {PACKAGE}`; macOS: `brew install prometheus`) or set PROMTOOL to its path"
    )
}

/// Whether `cargo test` with `args` runs the example service's tests: it does unless a
/// package filter (`-p`, `--package`) names only other packages.
pub(crate) fn needed_by(args: &[String]) -> bool {
    let mut packages = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "-p" || arg == "--package" {
            packages.extend(args.next().map(String::as_str));
        } else if let Some(name) = arg.strip_prefix("--package=") {
            packages.push(name);
        } else if let Some(name) = arg.strip_prefix("-p") {
            packages.push(name);
        }
    }
    packages.is_empty() || packages.contains(&"example-service")
}

#[cfg(test)]
mod tests {
    use super::needed_by;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|&a| a.to_owned()).collect()
    }

    #[test]
    fn needed_unless_a_package_filter_leaves_out_the_example_service() {
        assert!(needed_by(&[]));
        assert!(needed_by(&args(&["--test", "metrics"])));
        assert!(needed_by(&args(&["-p", "example-service"])));
        assert!(needed_by(&args(&["--package=example-service"])));
        assert!(needed_by(&args(&[
            "-ptowerkit-db",
            "-p",
            "example-service"
        ])));
        assert!(!needed_by(&args(&["-p", "towerkit-cache"])));
        assert!(!needed_by(&args(&["--package", "towerkit-db", "--lib"])));
    }
}
