//! `cargo xtask outside [template|minimal-app]`: towerkit as a user outside the workspace
//! meets it, built and tested in a scratch directory under the system's temporary one.
//!
//! - `template`: `cargo xtask new` writes a service from the example, which is built and
//!   tested (`cargo test --release`) against PostgreSQL and Redis.
//! - `minimal-app`: an existing small axum app (`xtask/fixtures/minimal-app`) that adds
//!   towerkit-nulls, towerkit-paginate and towerkit-cache with a dependency line and a
//!   `.layer(...)` each, as their READMEs show, builds and answers as they document.
//!
//! Both resolve towerkit's crates to this checkout through `[patch.crates-io]`, start from
//! a copy of the workspace's `Cargo.lock` (the versions CI tested), and build into the
//! workspace's target directory, so they recompile only what their features change.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::Result;
use crate::services::Services;

/// The fixture app, relative to the workspace root.
const MINIMAL_APP: &str = "xtask/fixtures/minimal-app";

/// Runs the named checks, or both.
pub(crate) fn outside(args: &[String]) -> Result {
    let checks: Vec<&str> = if args.is_empty() {
        vec!["template", "minimal-app"]
    } else {
        args.iter().map(String::as_str).collect()
    };
    if let Some(unknown) = checks
        .iter()
        .find(|check| !["template", "minimal-app"].contains(check))
    {
        return Err(format!(
            "unknown check `{unknown}`; usage: cargo xtask outside [template|minimal-app]"
        ));
    }
    let services = Services::ensure()?;
    for check in checks {
        let started = Instant::now();
        let mut scratch = Scratch::new(check)?;
        match check {
            "template" => template(&scratch.dir, &services)?,
            _ => minimal_app(&scratch.dir, &services)?,
        }
        scratch.passed = true;
        eprintln!("xtask outside: {check} passed in {:.0?}", started.elapsed());
    }
    Ok(())
}

/// A service from `cargo xtask new`, tested against the real services.
fn template(scratch: &Path, services: &Services) -> Result {
    let project = scratch.join("catalog-service");
    let generated = crate::new::generate("catalog-service", &project)?;
    eprintln!(
        "xtask outside: template written to {} ({} test files)",
        project.display(),
        generated.tests.len()
    );
    cargo_test(&project, services)
}

/// The fixture app with the `[patch]` section a user would not need once towerkit is
/// published.
fn minimal_app(scratch: &Path, services: &Services) -> Result {
    let root = crate::root();
    let fixture = root.join(MINIMAL_APP);
    let app = scratch.join("minimal-app");
    copy_tree(&fixture, &app)?;
    let manifest_path = app.join("Cargo.toml");
    let mut manifest = fs::read_to_string(&manifest_path)
        .map_err(|e| format!("read {}: {e}", manifest_path.display()))?;
    let metadata = crate::metadata::workspace()?;
    let towerkit: Vec<&str> = crate::metadata::packages(&metadata)?
        .iter()
        .filter_map(|package| package["name"].as_str())
        .filter(|name| {
            manifest
                .lines()
                .any(|line| line.split('=').next().map(str::trim) == Some(*name))
        })
        .collect();
    if towerkit.is_empty() {
        return Err(format!(
            "{MINIMAL_APP}/Cargo.toml depends on no towerkit crate"
        ));
    }
    manifest.push('\n');
    manifest.push_str(&crate::new::patch_section(&metadata, &towerkit)?);
    fs::write(&manifest_path, manifest)
        .map_err(|e| format!("write {}: {e}", manifest_path.display()))?;
    fs::copy(root.join("Cargo.lock"), app.join("Cargo.lock"))
        .map_err(|e| format!("copy Cargo.lock: {e}"))?;
    cargo_test(&app, services)
}

/// `cargo test --release` in `project`, with the workspace's target directory and release
/// profile (a project without the workspace's `[profile.release]` settings would share no
/// compiled crate with it).
fn cargo_test(project: &Path, services: &Services) -> Result {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(project)
        .args(["test", "--release"])
        .env("CARGO_TARGET_DIR", absolute(&crate::target_dir())?);
    let workspace_toml = crate::root().join("Cargo.toml");
    let workspace_toml = fs::read_to_string(&workspace_toml)
        .map_err(|e| format!("read {}: {e}", workspace_toml.display()))?;
    for (name, value) in release_profile_env(&workspace_toml) {
        command.env(name, value);
    }
    services.export(&mut command);
    crate::run_command(&mut command)
}

/// The `[profile.release]` settings of a `Cargo.toml` as the `CARGO_PROFILE_RELEASE_*`
/// variables that set them (plain `key = value` lines; the workspace has no nested tables).
fn release_profile_env(toml: &str) -> Vec<(String, String)> {
    toml.lines()
        .skip_while(|line| line.trim() != "[profile.release]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once('=')?;
            let name = format!(
                "CARGO_PROFILE_RELEASE_{}",
                key.trim().to_ascii_uppercase().replace('-', "_")
            );
            Some((name, value.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A directory of its own under the system's temporary directory, removed when the check
/// passes (kept, and named, when it fails).
struct Scratch {
    dir: PathBuf,
    passed: bool,
}

impl Scratch {
    fn new(check: &str) -> Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("towerkit-outside-{check}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        Ok(Scratch { dir, passed: false })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.passed {
            eprintln!("xtask outside: left {} for inspection", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Copies a directory tree (the fixture: a few small text files), skipping `target/`.
fn copy_tree(from: &Path, to: &Path) -> Result {
    fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("read {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("read {}: {e}", from.display()))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            if entry.file_name() != "target" {
                copy_tree(&path, &target)?;
            }
        } else {
            fs::copy(&path, &target).map_err(|e| format!("copy {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_profile_becomes_variables() {
        let toml = "[profile.bench]\ndebug = true\n\n[profile.release]\n# why\ndebug = \"line-tables-only\"\ncodegen-units = 1\n\n[other]\nx = 1\n";
        assert_eq!(
            release_profile_env(toml),
            [
                (
                    "CARGO_PROFILE_RELEASE_DEBUG".to_owned(),
                    "line-tables-only".to_owned()
                ),
                (
                    "CARGO_PROFILE_RELEASE_CODEGEN_UNITS".to_owned(),
                    "1".to_owned()
                ),
            ]
        );
    }
}
