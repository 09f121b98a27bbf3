//! `cargo xtask fuzz [--seconds N] [TARGET...] [-- LIBFUZZER_ARGS]`: runs every libFuzzer
//! target in `fuzz/targets` for N seconds each (default 60), seeded with the committed
//! corpus.
//!
//! The targets are built first, so the time reported is fuzzing time. New interesting inputs
//! go to `target/fuzz/corpus/<target>/`, libFuzzer's output to
//! `target/fuzz/logs/<target>.log`, and a crash to `target/fuzz/artifacts/<target>/`, which
//! fails the task: once the bug is fixed, copy the input into `fuzz/corpus/<target>/` so the
//! corpus test keeps it as a regression. Arguments after `--` go to libFuzzer (for example
//! `-fork=2 -ignore_crashes=1` to keep going past a known crash).

use std::time::Instant;

use crate::{Result, cargo, root, run_command, target_dir};

const DEFAULT_SECONDS: u64 = 60;

pub(crate) fn fuzz(args: &[String]) -> Result {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets = Vec::new();
    let mut extra = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let text = args.next().ok_or("--seconds needs a value")?;
                seconds = text
                    .parse()
                    .map_err(|_| format!("--seconds takes a whole number, got {text:?}"))?;
            }
            "--" => extra.extend(args.by_ref().cloned()),
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
    // cargo-fuzz needs nightly compiler flags (sanitizer coverage); RUSTC_BOOTSTRAP lets
    // the stable toolchain accept them.
    run_command(
        cargo()
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "build", "--fuzz-dir"])
            .arg(&fuzz_dir),
    )?;

    let logs = target_dir().join("fuzz").join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let mut summary = vec![format!(
        "{:<16} {:>7} {:>12} {:>8}  outcome",
        "target", "seconds", "executions", "corpus"
    )];
    let mut failed = false;
    for target in &targets {
        let corpus = target_dir().join("fuzz").join("corpus").join(target);
        let artifacts = target_dir().join("fuzz").join("artifacts").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&artifacts).map_err(|e| e.to_string())?;
        let seeds = root().join("fuzz").join("corpus").join(target);
        let log_path = logs.join(format!("{target}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        eprintln!(
            "xtask fuzz: {target} for {seconds} s (log: {})",
            log_path.display()
        );
        let started = Instant::now();
        let mut command = cargo();
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
            .arg("-print_final_stats=1")
            .args(&extra)
            .stderr(log);
        let result = run_command(&mut command);
        let elapsed = started.elapsed().as_secs();
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        let executions: u64 = output
            .lines()
            .filter_map(|line| line.strip_prefix("stat::number_of_executed_units:"))
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .sum();
        let inputs = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        let outcome = match result {
            Ok(()) => "no failure".to_owned(),
            Err(_) => {
                failed = true;
                let panic = output
                    .lines()
                    .find(|line| line.contains("panicked at") || line.contains("ERROR: "))
                    .unwrap_or("see the log");
                format!("FAILED: {panic} (inputs in {})", artifacts.display())
            }
        };
        summary.push(format!(
            "{target:<16} {elapsed:>7} {executions:>12} {inputs:>8}  {outcome}"
        ));
    }
    println!("\n{}", summary.join("\n"));
    if failed {
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
