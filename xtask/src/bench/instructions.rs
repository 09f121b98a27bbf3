//! Instruction counts: `benches/benches/instructions.rs`, run by gungraun under Callgrind.
//!
//! gungraun's library (a dev-dependency of `towerkit-benches`) needs its runner binary,
//! `gungraun-runner`, of exactly the same version; it is installed with `cargo install` when
//! missing. Valgrind itself must be installed (`apt-get install valgrind`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{Result, cargo, describe, root};

/// The bench target holding the instruction-count scenarios.
const BENCH: &str = "instructions";

/// How many times every scenario is counted; the least count is kept.
///
/// A scenario's one measured call is deterministic except for rare one-off slow paths
/// (an allocator growing its heap, say), which only ever add instructions: a
/// `stack/full/hit` count was seen once 4.6 % above the same code's other runs, enough to
/// fail the gate. The least of two passes is the scenario's steady cost.
const PASSES: usize = 2;

/// Runs every instruction-count scenario [`PASSES`] times and returns the least
/// instructions per iteration by id.
pub(crate) fn run() -> Result<BTreeMap<String, u64>> {
    let mut least = run_once()?;
    for _ in 1..PASSES {
        for (id, count) in run_once()? {
            least
                .entry(id)
                .and_modify(|known| *known = (*known).min(count))
                .or_insert(count);
        }
    }
    Ok(least)
}

fn run_once() -> Result<BTreeMap<String, u64>> {
    let valgrind = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !valgrind {
        return Err(
            "valgrind is not installed: instruction counts need it (apt-get install valgrind)"
                .to_owned(),
        );
    }
    let bin = ensure_runner()?;

    let mut command = cargo();
    command
        .args([
            "bench",
            "--locked",
            "--all-features",
            "--package",
            "towerkit-benches",
            "--bench",
            BENCH,
            "--",
            // Counts do not depend on load, so scenarios may share the cores.
            "--parallel=auto",
            "--output-format=json",
        ])
        .env("PATH", path_with(&bin))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("xtask bench: counting instructions under Callgrind");
    let output = command
        .output()
        .map_err(|e| format!("could not start {}: {e}", describe(&command)))?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", describe(&command), output.status));
    }
    let counts = parse(&String::from_utf8_lossy(&output.stdout))?;
    if counts.is_empty() {
        return Err("the instruction-count bench reported no results".to_owned());
    }
    Ok(counts)
}

/// Parses gungraun's `--output-format=json` lines (one summary per benchmark) into
/// instructions by criterion id. A scenario's gungraun id is its criterion id with `/`
/// written as `__`.
pub(crate) fn parse(stdout: &str) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for line in stdout.lines().filter(|line| line.starts_with('{')) {
        let summary: Value = serde_json::from_str(line)
            .map_err(|e| format!("gungraun printed a line that is not JSON ({e}): {line}"))?;
        let Some(id) = summary["id"].as_str() else {
            return Err(format!(
                "gungraun benchmark {} has no id: every scenario needs #[bench::<id>]",
                summary["module_path"]
            ));
        };
        let instructions = summary["profiles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|profile| profile["tool"] == "Callgrind")
            .find_map(|profile| profile["data"]["total"]["metrics"]["Ir"]["values"]["new"].as_u64())
            .ok_or(format!("gungraun reported no instruction count for {id}"))?;
        counts.insert(id.replace("__", "/"), instructions);
    }
    Ok(counts)
}

/// The directory holding a `gungraun-runner` of the version `towerkit-benches` uses,
/// installing it there when it is missing or of another version.
fn ensure_runner() -> Result<PathBuf> {
    let version = locked_version("gungraun")?;
    let bin = cargo_home().join("bin");
    let runner = bin.join("gungraun-runner");
    let installed = Command::new(&runner)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if installed.as_deref() == Some(format!("gungraun-runner {version}").as_str()) {
        return Ok(bin);
    }
    eprintln!(
        "xtask bench: installing gungraun-runner {version} (found {}); this takes a few minutes once",
        installed.as_deref().unwrap_or("none")
    );
    let mut install = cargo();
    install.args([
        "install",
        "--locked",
        "gungraun-runner",
        "--version",
        &version,
        "--root",
    ]);
    install.arg(cargo_home());
    crate::run_command(&mut install)?;
    Ok(bin)
}

/// The version of `package` in the workspace's `Cargo.lock`.
fn locked_version(package: &str) -> Result<String> {
    let path = root().join("Cargo.lock");
    let lock = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    version_in_lock(&lock, package).ok_or(format!(
        "{package} is not in Cargo.lock: is it a dependency of towerkit-benches?"
    ))
}

fn version_in_lock(lock: &str, package: &str) -> Option<String> {
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name_line {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_owned());
        }
    }
    None
}

/// `CARGO_HOME`, or `~/.cargo`: where `cargo install` puts binaries.
fn cargo_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return PathBuf::from(home);
    }
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cargo"))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
}

/// `PATH` with `dir` first, so the bench harness finds the runner installed there.
fn path_with(dir: &std::path::Path) -> std::ffi::OsString {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_else(|_| dir.as_os_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, tool: &str, instructions: u64) -> String {
        format!(
            r#"{{"id":"{id}","module_path":"instructions::g::f","profiles":[{{"tool":"{tool}","data":{{"total":{{"metrics":{{"Ir":{{"values":{{"new":{instructions}}}}}}}}}}}}}]}}"#
        )
    }

    #[test]
    fn reads_instructions_by_criterion_id() {
        let stdout = [
            summary("json__strip_nulls__towerkit__1MB", "Callgrind", 14_480_005),
            summary("layer__none__passthrough", "Callgrind", 3_583),
        ]
        .join("\n");
        let counts = parse(&stdout).unwrap();
        assert_eq!(counts["json/strip_nulls/towerkit/1MB"], 14_480_005);
        assert_eq!(counts["layer/none/passthrough"], 3_583);
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn a_summary_without_a_callgrind_count_is_an_error() {
        assert!(parse(&summary("layer__none__passthrough", "DHAT", 1)).is_err());
        assert!(parse(r#"{"module_path":"instructions::g::f","profiles":[]}"#).is_err());
        assert!(parse("{not json").is_err());
    }

    #[test]
    fn lines_that_are_not_summaries_are_skipped() {
        assert!(parse("Compiling\n\n").unwrap().is_empty());
    }

    #[test]
    fn finds_a_package_version_in_the_lock_file() {
        let lock = "[[package]]\nname = \"gungraun-runner\"\nversion = \"9.9.9\"\n\n[[package]]\nname = \"gungraun\"\nversion = \"0.20.0\"\n";
        assert_eq!(version_in_lock(lock, "gungraun").as_deref(), Some("0.20.0"));
        assert_eq!(version_in_lock(lock, "criterion"), None);
    }

    #[test]
    fn the_workspace_locks_the_gungraun_version_the_runner_is_installed_at() {
        let version = locked_version("gungraun").unwrap();
        assert!(version.split('.').count() == 3, "{version}");
    }
}
