//! `cargo xtask ci`: every check CI runs, in the order that shares the most build work.

use std::process::{Command, Stdio};

use crate::{Result, cargo, run_command};

/// Formatting, lints, docs, the facade's features, tests, the template and the minimal app
/// outside the workspace, the bench build, packaging and the dependency policy.
pub(crate) fn ci() -> Result {
    step(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--check"]),
    )?;
    step(
        "cargo clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "cargo doc",
        cargo()
            .args([
                "doc",
                "--workspace",
                "--no-deps",
                "--all-features",
                "--locked",
            ])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    facade_features()?;
    crate::test(&[])?;
    outside()?;
    step(
        "cargo bench --no-run",
        cargo().args([
            "bench",
            "--workspace",
            "--all-features",
            "--locked",
            "--no-run",
        ]),
    )?;
    instruction_counts()?;
    package()?;
    deny()?;
    eprintln!("xtask ci: all checks passed");
    Ok(())
}

/// `cargo xtask outside`: the template and the minimal app, built and tested outside the
/// workspace with its target directory (after the tests, whose release build they share).
fn outside() -> Result {
    eprintln!("xtask ci: cargo xtask outside template minimal-app");
    let started = std::time::Instant::now();
    let result = crate::outside::outside(&["template".to_owned(), "minimal-app".to_owned()]);
    eprintln!(
        "xtask ci: cargo xtask outside took {:.0?}",
        started.elapsed()
    );
    result
}

/// The committed instruction-count baseline CI compares with (`cargo xtask bench
/// --instructions --save benches/baseline/instructions.json` updates it).
const INSTRUCTIONS_BASELINE: &str = "benches/baseline/instructions.json";

/// Instruction counts of every bench scenario against the committed baseline: fails on a
/// regression beyond 2 %. Wall times are not measured here: CI machines are too noisy.
fn instruction_counts() -> Result {
    let name =
        format!("cargo xtask bench --quick --instructions --compare {INSTRUCTIONS_BASELINE}");
    eprintln!("xtask ci: {name}");
    let started = std::time::Instant::now();
    let args = [
        "--quick",
        "--instructions",
        "--compare",
        INSTRUCTIONS_BASELINE,
    ]
    .map(str::to_owned);
    let result = crate::bench::bench(&args);
    eprintln!("xtask ci: {name} took {:.0?}", started.elapsed());
    result
}

/// `cargo package` of every publishable member (all but those with `publish = false`), as
/// `cargo publish` would upload them: each `.crate` is written to `<target>/package/`,
/// unpacked, and its library built (dev profile, default features) against the other
/// packages rather than the workspace, in dependency order. A file the package leaves out,
/// an internal dependency without a version, or a feature combination that only builds
/// inside the workspace fails here. `--allow-dirty`: nothing is uploaded, and `cargo xtask
/// ci` checks the working tree as it is.
///
/// Cost on the project's shared 2-core machine (other builds running): 10 min 17 s the
/// first time in a target directory that has run the other steps (their check, release and
/// bench builds share nothing with these dev builds: 256 crates compiled, 231 s of CPU),
/// 28-42 s after that (the nine packages are unpacked afresh each run, so they are always
/// rebuilt; their dependencies are not).
fn package() -> Result {
    let packages = publishable_packages()?;
    forget_unpacked_packages(&packages)?;
    forget_package_builds(&packages)?;
    let mut command = cargo();
    command.args(["package", "--locked", "--allow-dirty"]);
    for name in &packages {
        command.args(["--package", name]);
    }
    step(
        &format!("cargo package ({})", packages.join(", ")),
        &mut command,
    )
}

/// Removes what an earlier `cargo package` unpacked of these packages. To build a package
/// against the others, cargo serves the freshly packaged `.crate` files as a local registry
/// and unpacks them under `$CARGO_HOME/registry/src/-<hash of that registry's path>/`;
/// when `<name>-<version>` is already there it is reused, so a crate changed since the last
/// run without a version bump would be verified against its old sources (seen: a new
/// function of towerkit-http "missing" for towerkit-compress). Only those local-registry
/// directories (their names start with `-`) are touched, never crates.io's.
fn forget_unpacked_packages(packages: &[String]) -> Result {
    let cargo_home = match std::env::var_os("CARGO_HOME") {
        Some(home) => std::path::PathBuf::from(home),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::PathBuf::from(home).join(".cargo"),
            None => return Ok(()),
        },
    };
    let Ok(registries) = std::fs::read_dir(cargo_home.join("registry/src")) else {
        return Ok(());
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(unpacked) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for dir in unpacked.flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            if is_unpacked_package(&name, packages) {
                std::fs::remove_dir_all(dir.path())
                    .map_err(|e| format!("remove {}: {e}", dir.path().display()))?;
            }
        }
    }
    Ok(())
}

/// Removes the dev-profile fingerprints of `packages` from the target directory. Packaged
/// files carry a fixed modification time (2006), so a package built from a fresh unpacking
/// still looks up to date to cargo and its old library would be linked: rebuilding the
/// workspace's own crates in the dev profile costs a few seconds.
fn forget_package_builds(packages: &[String]) -> Result {
    let fingerprints = crate::target_dir().join("debug/.fingerprint");
    let Ok(entries) = std::fs::read_dir(&fingerprints) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_build_of(&name, packages) {
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| format!("remove {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Whether a fingerprint directory (`<name>-<16 hex digits>`) belongs to one of `packages`.
fn is_build_of(dir: &str, packages: &[String]) -> bool {
    packages.iter().any(|name| {
        dir.strip_prefix(name.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|hash| hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()))
    })
}

/// Whether `dir` (`<name>-<version>`) is one of `packages` unpacked.
fn is_unpacked_package(dir: &str, packages: &[String]) -> bool {
    packages.iter().any(|name| {
        dir.strip_prefix(name.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// The workspace members that may be published, from `cargo metadata`.
fn publishable_packages() -> Result<Vec<String>> {
    let names = publishable(&crate::metadata::workspace()?)?;
    if names.is_empty() {
        return Err("no publishable package in the workspace".to_owned());
    }
    Ok(names)
}

/// The names of the packages in `cargo metadata` output whose `publish` allows a registry:
/// `null` when any registry may take the package, `[]` for `publish = false`.
fn publishable(metadata: &serde_json::Value) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for package in crate::metadata::packages(metadata)? {
        let allowed = package["publish"]
            .as_array()
            .is_none_or(|registries| !registries.is_empty());
        if allowed {
            let name = package["name"]
                .as_str()
                .ok_or("cargo metadata printed a package without a name")?;
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

fn step(name: &str, command: &mut Command) -> Result {
    eprintln!("xtask ci: {name}");
    let started = std::time::Instant::now();
    let result = run_command(command);
    eprintln!("xtask ci: {name} took {:.0?}", started.elapsed());
    result
}

/// The facade builds with all, no default, and each of its features alone (`cargo hack check
/// -p towerkit --each-feature`, installing cargo-hack when missing): every sub-crate must
/// compile with only what the facade turns on. `--no-dev-deps` is not needed: `check`
/// builds no test target, and resolver 3 does not unify dev-dependency features into it
/// (and `--no-dev-deps` rewrites the manifest, which `--locked` then refuses).
///
/// Cost on the project's shared 2-core machine, check profile, 18 runs: 3 min 40 s from an
/// empty target directory, 1 min 30 s the first time after the workspace's clippy and
/// tests, 3-5 s when nothing or one sub-crate changed.
fn facade_features() -> Result {
    install_if_missing("hack", "cargo-hack")?;
    step(
        "cargo hack check -p towerkit --each-feature",
        cargo().args([
            "hack",
            "check",
            "-p",
            "towerkit",
            "--each-feature",
            "--locked",
        ]),
    )
}

/// `cargo install --locked <krate>` unless `cargo <subcommand> --version` already works.
fn install_if_missing(subcommand: &str, krate: &str) -> Result {
    let installed = cargo()
        .args([subcommand, "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    step(
        &format!("cargo install {krate}"),
        cargo().args(["install", "--locked", krate]),
    )
}

/// `cargo deny check bans licenses sources`, installing cargo-deny when missing, then
/// [`advisories`].
fn deny() -> Result {
    install_if_missing("deny", "cargo-deny")?;
    step(
        "cargo deny",
        cargo().args([
            "deny",
            "--all-features",
            "check",
            "bans",
            "licenses",
            "sources",
        ]),
    )?;
    advisories()
}

/// How long fetching the advisory database may take before it counts as unreachable.
const ADVISORY_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(180);

/// `cargo deny check advisories` when RustSec's advisory database (a git repository on
/// GitHub) can be fetched: `cargo deny fetch db` first, then the check, offline, against
/// what it fetched, which fails the run on a vulnerable, unsound or unmaintained dependency. When
/// the database cannot be fetched (no network, only a registry mirror), the check is
/// skipped and the reason printed.
fn advisories() -> Result {
    eprintln!("xtask ci: cargo deny fetch db");
    let mut fetch = cargo()
        .args(["deny", "fetch", "db"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start cargo deny fetch: {e}"))?;
    // The error output is small; read it on a thread so the deadline below holds.
    let stderr = fetch.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
            text
        })
    });
    let deadline = std::time::Instant::now() + ADVISORY_FETCH_TIMEOUT;
    let fetched = loop {
        match fetch.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            _ => {
                let _ = fetch.kill();
                let _ = fetch.wait();
                break false;
            }
        }
    };
    let why = stderr
        .and_then(|reader| reader.join().ok())
        .unwrap_or_default();
    if !fetched {
        let why = why
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("no answer in time");
        eprintln!(
            "xtask ci: skipping `cargo deny check advisories`: the advisory database cannot be fetched ({})",
            why.trim()
        );
        return Ok(());
    }
    step(
        "cargo deny check advisories",
        // `--offline`: no second fetch; the check reads what `fetch` just brought.
        cargo().args(["deny", "--all-features", "--offline", "check", "advisories"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The libraries, and only they, are packaged: examples, benches, xtask, fuzz and
    /// test-support say `publish = false`.
    #[test]
    fn packages_exactly_the_libraries() {
        let mut names = publishable_packages().unwrap();
        names.sort();
        assert_eq!(
            names,
            [
                "towerkit",
                "towerkit-cache",
                "towerkit-compress",
                "towerkit-db",
                "towerkit-http",
                "towerkit-json",
                "towerkit-nulls",
                "towerkit-paginate",
                "towerkit-timing",
                "towerkit-validators",
            ]
        );
    }

    #[test]
    fn unpacked_packages_are_told_by_name_and_version() {
        let packages = ["towerkit".to_owned(), "towerkit-http".to_owned()];
        assert!(is_unpacked_package("towerkit-0.1.0", &packages));
        assert!(is_unpacked_package("towerkit-http-0.1.0", &packages));
        assert!(!is_unpacked_package("towerkit-cache-0.1.0", &packages));
        assert!(!is_unpacked_package("towerkit-httpx-0.1.0", &packages));
        assert!(!is_unpacked_package("serde-1.0.0", &packages));
        assert!(is_build_of("towerkit-http-4fd15fc7bfc67956", &packages));
        assert!(is_build_of("towerkit-06a4454fd592cb4f", &packages));
        assert!(!is_build_of("towerkit-cache-06a4454fd592cb4f", &packages));
        assert!(!is_build_of("towerkit-http-0.1.0", &packages));
    }

    #[test]
    fn publish_false_and_a_missing_list_are_told_apart() {
        let metadata = serde_json::json!({"packages": [
            {"name": "open", "publish": null},
            {"name": "closed", "publish": []},
            {"name": "private-registry", "publish": ["internal"]},
        ]});
        assert_eq!(
            publishable(&metadata).unwrap(),
            ["open", "private-registry"]
        );
        assert!(publishable(&serde_json::json!({})).is_err());
    }
}
