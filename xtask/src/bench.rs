//! `cargo xtask bench`: runs the criterion benches and keeps their figures.
//!
//! The report, `target/xtask-bench/latest.json`, is the contract other tools read:
//! `{"git": "<sha>", "results": [{"id": "<group>/<function>/<param>", "ns": <median ns per
//! iteration>, "bytes": <bytes per iteration or null>}]}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::{Result, cargo, run_command, target_dir};

/// Default `--threshold`: a bench slower than its baseline by more than this fails `--compare`.
const DEFAULT_THRESHOLD_PCT: f64 = 10.0;

#[derive(Debug, Default)]
struct Options {
    filter: Option<String>,
    quick: bool,
    save: Option<String>,
    compare: Option<String>,
    threshold: f64,
}

/// One bench figure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figure {
    pub(crate) id: String,
    pub(crate) ns: f64,
    pub(crate) bytes: Option<u64>,
}

pub(crate) fn bench(args: &[String]) -> Result {
    let options = parse(args)?;
    let started = SystemTime::now();
    let mut command = cargo();
    command.args(["bench", "--locked", "--all-features", "--package", "towerkit-benches", "--"]);
    if let Some(filter) = &options.filter {
        command.arg(filter);
    }
    if options.quick {
        command.args(["--warm-up-time", "1", "--measurement-time", "2", "--sample-size", "20"]);
    }
    run_command(&mut command)?;

    let figures = collect(&target_dir().join("criterion"), started)?;
    if figures.is_empty() {
        return Err("no criterion results were written (does the filter match any bench?)".to_owned());
    }
    let report = json!({
        "git": git_sha(),
        "results": figures.iter().map(|f| json!({"id": f.id, "ns": f.ns, "bytes": f.bytes})).collect::<Vec<_>>(),
    });
    let dir = target_dir().join("xtask-bench");
    write_json(&dir.join("latest.json"), &report)?;
    print_table(&figures);

    if let Some(name) = &options.save {
        let path = baseline_path(name);
        write_json(&path, &report)?;
        eprintln!("xtask bench: saved baseline {name:?} to {}", path.display());
    }
    if let Some(name) = &options.compare {
        let baseline = read_report(&baseline_path(name))?;
        let regressions = compare(&figures, &baseline, options.threshold);
        if !regressions.is_empty() {
            return Err(format!(
                "{} bench(es) slower than baseline {name:?} by more than {}%: {}",
                regressions.len(),
                options.threshold,
                regressions.join(", ")
            ));
        }
    }
    Ok(())
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options { threshold: DEFAULT_THRESHOLD_PCT, ..Options::default() };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().cloned().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--save" => options.save = Some(value("--save")?),
            "--compare" => options.compare = Some(value("--compare")?),
            "--threshold" => {
                let text = value("--threshold")?;
                options.threshold = text
                    .trim_end_matches('%')
                    .parse()
                    .map_err(|_| format!("--threshold takes a percentage, got {text:?}"))?;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            filter => options.filter = Some(filter.to_owned()),
        }
    }
    Ok(options)
}

fn baseline_path(name: &str) -> PathBuf {
    target_dir().join("xtask-bench").join("baselines").join(format!("{name}.json"))
}

/// Reads every criterion result written since `since` under `dir`.
fn collect(dir: &Path, since: SystemTime) -> Result<Vec<Figure>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "new") {
                if let Some(figure) = read_criterion(&path, since) {
                    found.insert(figure.id.clone(), figure);
                }
            } else if path.file_name().is_none_or(|n| n != "base" && n != "report") {
                pending.push(path);
            }
        }
    }
    Ok(found.into_values().collect())
}

/// One criterion result directory (`.../new`), if it was written since `since`.
fn read_criterion(dir: &Path, since: SystemTime) -> Option<Figure> {
    let estimates_path = dir.join("estimates.json");
    let modified = std::fs::metadata(&estimates_path).and_then(|m| m.modified()).ok()?;
    if modified < since {
        return None;
    }
    let benchmark: Value = serde_json::from_slice(&std::fs::read(dir.join("benchmark.json")).ok()?).ok()?;
    let estimates: Value = serde_json::from_slice(&std::fs::read(estimates_path).ok()?).ok()?;
    let id = [&benchmark["group_id"], &benchmark["function_id"], &benchmark["value_str"]]
        .iter()
        .filter_map(|part| part.as_str())
        .collect::<Vec<_>>()
        .join("/");
    let ns = estimates["median"]["point_estimate"].as_f64()?;
    let bytes = benchmark["throughput"]["Bytes"].as_u64().or_else(|| benchmark["throughput"]["BytesDecimal"].as_u64());
    Some(Figure { id, ns, bytes })
}

fn read_report(path: &Path) -> Result<Vec<Figure>> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let report: Value = serde_json::from_slice(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let results = report["results"].as_array().ok_or(format!("{} has no results", path.display()))?;
    Ok(results
        .iter()
        .filter_map(|r| {
            Some(Figure { id: r["id"].as_str()?.to_owned(), ns: r["ns"].as_f64()?, bytes: r["bytes"].as_u64() })
        })
        .collect())
}

/// Prints each figure against the baseline and returns the ids slower than `threshold` %.
fn compare(figures: &[Figure], baseline: &[Figure], threshold: f64) -> Vec<String> {
    let baseline: BTreeMap<&str, f64> = baseline.iter().map(|f| (f.id.as_str(), f.ns)).collect();
    let mut regressions = Vec::new();
    println!("\n{:<52} {:>14} {:>14} {:>9}", "bench", "baseline ns", "now ns", "delta");
    for figure in figures {
        let Some(&before) = baseline.get(figure.id.as_str()) else {
            println!("{:<52} {:>14} {:>14.1} {:>9}", figure.id, "-", figure.ns, "new");
            continue;
        };
        let delta = (figure.ns - before) / before * 100.0;
        let flag = if delta > threshold { "  REGRESSION" } else { "" };
        println!("{:<52} {:>14.1} {:>14.1} {:>+8.1}%{flag}", figure.id, before, figure.ns, delta);
        if delta > threshold {
            regressions.push(figure.id.clone());
        }
    }
    regressions
}

fn print_table(figures: &[Figure]) {
    println!("\n{:<52} {:>14} {:>12}", "bench", "median ns", "MB/s");
    for figure in figures {
        let throughput = figure
            .bytes
            .map(|bytes| format!("{:.1}", bytes as f64 / figure.ns * 1e9 / 1e6))
            .unwrap_or_default();
        println!("{:<52} {:>14.1} {:>12}", figure.id, figure.ns, throughput);
    }
}

fn write_json(path: &Path, value: &Value) -> Result {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn git_sha() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(crate::root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(id: &str, ns: f64) -> Figure {
        Figure { id: id.to_owned(), ns, bytes: None }
    }

    #[test]
    fn flags_only_slowdowns_beyond_the_threshold() {
        let baseline = [figure("a/b/c", 100.0), figure("d/e/f", 100.0), figure("g/h/i", 100.0)];
        let now = [figure("a/b/c", 111.0), figure("d/e/f", 109.0), figure("g/h/i", 50.0), figure("new/x/y", 1.0)];
        assert_eq!(compare(&now, &baseline, 10.0), vec!["a/b/c".to_owned()]);
    }

    #[test]
    fn parses_options() {
        let args: Vec<String> = ["json", "--quick", "--compare", "main", "--threshold", "5%"].map(String::from).to_vec();
        let options = parse(&args).unwrap();
        assert_eq!(options.filter.as_deref(), Some("json"));
        assert!(options.quick);
        assert_eq!(options.compare.as_deref(), Some("main"));
        assert_eq!(options.threshold, 5.0);
        assert!(parse(&["--bogus".to_owned()]).is_err());
    }
}
