//! Wall times: the criterion benches of `towerkit-benches`, read back from criterion's
//! `estimates.json` files.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

use crate::{Result, cargo, run_command};

/// Criterion's settings for `--quick`: a short warm-up, criterion's minimum of samples and
/// a short measurement (a bench slower than that takes what ten samples take), and fewer
/// bootstrap resamples for the confidence interval, which is not reported.
const QUICK_ARGS: [&str; 8] = [
    "--warm-up-time",
    "0.3",
    "--measurement-time",
    "0.7",
    "--sample-size",
    "10",
    "--nresamples",
    "2000",
];

/// One criterion result: the median wall time per iteration and the bytes per iteration
/// (criterion's throughput), if the bench declares them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WallTime {
    pub(crate) id: String,
    pub(crate) ns: f64,
    pub(crate) bytes: Option<u64>,
}

/// Runs every criterion bench of `towerkit-benches` (the instruction-count bench is not a
/// default bench target) and returns the figures they wrote. The benches that are not
/// criterion's run too, and write their results under `results_dir` (see `custom`).
pub(crate) fn run(
    filter: Option<&str>,
    quick: bool,
    criterion_dir: &Path,
    results_dir: &Path,
) -> Result<Vec<WallTime>> {
    let started = SystemTime::now();
    let mut command = cargo();
    command
        .args([
            "bench",
            "--locked",
            "--all-features",
            "--package",
            "towerkit-benches",
            "--",
        ])
        .env(super::custom::RESULTS_ENV, results_dir);
    if let Some(filter) = filter {
        command.arg(filter);
    }
    if quick {
        command.args(QUICK_ARGS);
    }
    run_command(&mut command)?;
    Ok(collect(criterion_dir, started))
}

/// Reads every criterion result written since `since` under `dir`.
pub(crate) fn collect(dir: &Path, since: SystemTime) -> Vec<WallTime> {
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
                if let Some(figure) = read_result(&path, since) {
                    found.insert(figure.id.clone(), figure);
                }
            } else if path
                .file_name()
                .is_none_or(|n| n != "base" && n != "report")
            {
                pending.push(path);
            }
        }
    }
    found.into_values().collect()
}

/// One criterion result directory (`.../new`), if it was written since `since`.
fn read_result(dir: &Path, since: SystemTime) -> Option<WallTime> {
    let estimates_path = dir.join("estimates.json");
    let modified = std::fs::metadata(&estimates_path)
        .and_then(|m| m.modified())
        .ok()?;
    if modified < since {
        return None;
    }
    let benchmark: Value =
        serde_json::from_slice(&std::fs::read(dir.join("benchmark.json")).ok()?).ok()?;
    let estimates: Value = serde_json::from_slice(&std::fs::read(estimates_path).ok()?).ok()?;
    let id = [
        &benchmark["group_id"],
        &benchmark["function_id"],
        &benchmark["value_str"],
    ]
    .iter()
    .filter_map(|part| part.as_str())
    .collect::<Vec<_>>()
    .join("/");
    let ns = estimates["median"]["point_estimate"].as_f64()?;
    let bytes = benchmark["throughput"]["Bytes"]
        .as_u64()
        .or_else(|| benchmark["throughput"]["BytesDecimal"].as_u64());
    Some(WallTime { id, ns, bytes })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn write_result(root: &Path, dir: &str, benchmark: &str, median: f64) {
        let dir = root.join(dir).join("new");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("benchmark.json"), benchmark).unwrap();
        let estimates = format!(r#"{{"median": {{"point_estimate": {median}}}}}"#);
        std::fs::write(dir.join("estimates.json"), estimates).unwrap();
    }

    #[test]
    fn collects_ids_medians_and_throughput_written_since_the_start() {
        let root = std::env::temp_dir().join(format!("xtask-criterion-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let before = SystemTime::now() - Duration::from_secs(5);
        write_result(
            &root,
            "json_strip_nulls/towerkit/1MB",
            r#"{"group_id": "json/strip_nulls", "function_id": "towerkit", "value_str": "1MB", "throughput": {"Bytes": 1000000}}"#,
            1234.5,
        );
        write_result(
            &root,
            "layer/none_passthrough",
            r#"{"group_id": "layer", "function_id": "none/passthrough", "value_str": null, "throughput": null}"#,
            99.0,
        );
        let found = collect(&root, before);
        let after = collect(&root, SystemTime::now() + Duration::from_secs(60));
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            found,
            vec![
                WallTime {
                    id: "json/strip_nulls/towerkit/1MB".to_owned(),
                    ns: 1234.5,
                    bytes: Some(1_000_000)
                },
                WallTime {
                    id: "layer/none/passthrough".to_owned(),
                    ns: 99.0,
                    bytes: None
                },
            ]
        );
        assert!(after.is_empty(), "results older than the run are skipped");
    }
}
