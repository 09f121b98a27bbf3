//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs every libFuzzer target in
//! `fuzz/targets` for N seconds each (default 60), seeded with the committed corpus.
//!
//! New interesting inputs go to `target/fuzz/corpus/<target>/`; a crash is written to
//! `target/fuzz/artifacts/<target>/` and fails the task: copy it into
//! `fuzz/corpus/<target>/` so the corpus test keeps it as a regression.

use std::time::Instant;

use crate::{Result, cargo, root, run_command, target_dir};

const DEFAULT_SECONDS: u64 = 60;

pub(crate) fn fuzz(args: &[String]) -> Result {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let text = args.next().ok_or("--seconds needs a value")?;
                seconds = text
                    .parse()
                    .map_err(|_| format!("--seconds takes a whole number, got {text:?}"))?;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            target => targets.push(target.to_owned()),
        }
    }
    let fuzz_dir = root().join("fuzz").join("targets");
    if targets.is_empty() {
        targets = list_targets(&fuzz_dir)?;
    }

    let installed = cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        run_command(cargo().args(["install", "--locked", "cargo-fuzz"]))?;
    }

    let mut summary = Vec::new();
    for target in &targets {
        let corpus = target_dir().join("fuzz").join("corpus").join(target);
        let artifacts = target_dir().join("fuzz").join("artifacts").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&artifacts).map_err(|e| e.to_string())?;
        let seeds = root().join("fuzz").join("corpus").join(target);
        let started = Instant::now();
        eprintln!("xtask fuzz: {target} for {seconds} s");
        let mut command = cargo();
        // cargo-fuzz needs nightly compiler flags (sanitizer coverage); RUSTC_BOOTSTRAP lets
        // the stable toolchain accept them.
        command
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--fuzz-dir"])
            .arg(&fuzz_dir)
            .arg(target)
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1");
        let result = run_command(&mut command);
        let inputs = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        let outcome = if result.is_ok() {
            "no failure"
        } else {
            "FAILED (see artifacts)"
        };
        summary.push(format!(
            "{target:<20} {:>6.0?} {inputs:>7} corpus inputs  {outcome}",
            started.elapsed()
        ));
        if result.is_err() {
            eprintln!(
                "xtask fuzz: {target} found a failure; inputs are in {}",
                artifacts.display()
            );
        }
    }
    println!("\n{}", summary.join("\n"));
    if summary.iter().any(|line| line.ends_with("(see artifacts)")) {
        return Err("a fuzz target failed".to_owned());
    }
    Ok(())
}

/// The `[[bin]]` names of the cargo-fuzz package.
fn list_targets(fuzz_dir: &std::path::Path) -> Result<Vec<String>> {
    let manifest =
        std::fs::read_to_string(fuzz_dir.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let mut targets = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if in_bin && let Some(name) = line.strip_prefix("name = ") {
            targets.push(name.trim_matches('"').to_owned());
        }
    }
    Ok(targets)
}
