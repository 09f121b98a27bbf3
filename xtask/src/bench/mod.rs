//! `cargo xtask bench`: instruction counts to catch regressions, criterion wall times to
//! read, each bench next to its reference from the same run.
//!
//! - Instruction counts come from `benches/benches/instructions.rs`, run once per scenario
//!   under Callgrind by gungraun: exact and independent of the machine's load, they gate
//!   (`--threshold`, 2 % by default). Wall times come from the criterion benches and only
//!   warn: on a shared machine they swing by several times from run to run.
//! - `target/xtask-bench/latest.json` is the contract other tools read:
//!   `{"git": "<sha>", "date": "<RFC 3339>", "results": [{"id": "<group>/<function>/<param>",
//!   "ns": <median ns per iteration or null>, "bytes": <bytes per iteration or null>,
//!   "instructions": <instructions per iteration>}]}` (`instructions` only where the bench
//!   has an instruction-count scenario; `ns` is null in an `--instructions` run).
//! - `--save NAME` writes the same report as a baseline and appends the run to
//!   `target/xtask-bench/history.jsonl`; `--compare NAME` shows deltas against it and fails
//!   on an instruction-count regression. A NAME with a `/` or ending in `.json` is a path
//!   from the workspace root (the committed baseline is `benches/baseline/instructions.json`).
//! - Every run renders `target/xtask-bench/report.html`: the table, and one chart per bench
//!   over the saved history.
//! - Benches whose figure is not a time per iteration (`cache/collapse/4_instances`: origin
//!   calls and added waits) are `harness = false` benches that write their results to
//!   `$TOWERKIT_BENCH_RESULTS` ([`custom`]); they are shown below the table and recorded in
//!   `latest.json` with `"values": {name: number}` and a `"note"`, never gated.

mod compare;
mod criterion;
mod custom;
mod history;
mod html;
mod instructions;
mod references;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::{Result, root, target_dir};

/// Default `--threshold`: more instructions than the baseline by this many percent fails
/// `--compare`.
const DEFAULT_THRESHOLD_PCT: f64 = 2.0;

/// Which figures a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Measure {
    /// Instruction counts and wall times.
    #[default]
    Both,
    /// `--instructions`: instruction counts only (what CI runs).
    Instructions,
    /// `--wall`: criterion wall times only.
    Wall,
}

#[derive(Debug, Default)]
struct Options {
    filter: Option<String>,
    quick: bool,
    save: Option<String>,
    compare: Option<String>,
    threshold: f64,
    measure: Measure,
}

/// One bench's figures in one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Figure {
    pub(crate) id: String,
    /// Median wall time per iteration (criterion).
    pub(crate) ns: Option<f64>,
    /// Bytes per iteration (criterion's throughput).
    pub(crate) bytes: Option<u64>,
    /// Instructions per iteration (Callgrind).
    pub(crate) instructions: Option<u64>,
    /// Named figures of a bench that is not a time per iteration ([`custom`]), in the
    /// bench's order.
    pub(crate) values: Vec<(String, f64)>,
    /// What such a bench concluded (whether a target was met), for reading.
    pub(crate) note: Option<String>,
}

impl Figure {
    /// Whether the figure has a time or an instruction count: a row of the table.
    fn is_timed(&self) -> bool {
        self.ns.is_some() || self.instructions.is_some()
    }
}

pub(crate) fn bench(args: &[String]) -> Result {
    let options = parse(args)?;
    let dir = target_dir().join("xtask-bench");
    let started = SystemTime::now();

    let mut figures: Vec<Figure> = Vec::new();
    if options.measure != Measure::Instructions {
        let results = dir.join("results");
        let walls = criterion::run(
            options.filter.as_deref(),
            options.quick,
            &target_dir().join("criterion"),
            &results,
        )?;
        figures.extend(walls.into_iter().map(|w| Figure {
            id: w.id,
            ns: Some(w.ns),
            bytes: w.bytes,
            ..Figure::default()
        }));
        figures.extend(custom::collect(&results, started));
    }
    if options.measure != Measure::Wall {
        match instructions::run() {
            Ok(counts) => merge_instructions(&mut figures, counts, options.filter.as_deref()),
            Err(message) if options.measure == Measure::Both && options.compare.is_none() => {
                eprintln!("xtask bench: no instruction counts: {message}");
            }
            Err(message) => return Err(message),
        }
    }
    if figures.is_empty() {
        return Err("no bench results (does the filter match any bench?)".to_owned());
    }

    let git = git_sha();
    let date = history::rfc3339(started);
    let report = report_json(&git, &date, &figures);
    write_json(&dir.join("latest.json"), &report)?;

    // Deltas against the named baseline, or else against the last saved run.
    let history_path = dir.join("history.jsonl");
    let mut runs = history::read(&history_path)?;
    let (baseline, baseline_label) = match &options.compare {
        Some(name) => {
            let path = baseline_path(name);
            (
                Some(read_report(&path)?),
                Some(format!("baseline {name:?}")),
            )
        }
        None => match runs.last() {
            Some(last) => (
                Some(last.figures.clone()),
                Some(format!(
                    "the last saved run ({:?}, {} at {})",
                    last.name,
                    last.git.get(..10).unwrap_or(&last.git),
                    last.date
                )),
            ),
            None => (None, None),
        },
    };
    let timed: Vec<Figure> = figures.iter().filter(|f| f.is_timed()).cloned().collect();
    let rows = compare::rows(&timed, baseline.as_deref(), options.threshold);
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    println!();
    // A run of custom benches only (a filter such as `collapse`) has no table to show.
    if !rows.is_empty() || timed.len() == figures.len() {
        print!(
            "{}",
            compare::render(&rows, baseline_label.as_deref(), color)
        );
    }
    print!("{}", custom::render(&figures));
    if let Some(baseline) = &baseline {
        let missing = compare::missing(&figures, baseline);
        if !missing.is_empty() && options.filter.is_none() {
            println!("not measured in this run: {}", missing.join(", "));
        }
    }

    let run = history::Run {
        git,
        date,
        name: options
            .save
            .clone()
            .unwrap_or_else(|| "latest (unsaved)".to_owned()),
        figures,
    };
    if let Some(name) = &options.save {
        let path = baseline_path(name);
        write_json(&path, &report)?;
        history::append(&history_path, &run)?;
        eprintln!("xtask bench: saved baseline {name:?} to {}", path.display());
    }
    runs.push(run);
    let report_path = dir.join("report.html");
    let html = html::render(&runs, &rows, baseline_label.as_deref());
    std::fs::write(&report_path, html)
        .map_err(|e| format!("cannot write {}: {e}", report_path.display()))?;
    eprintln!("xtask bench: report in {}", report_path.display());

    let regressions = compare::regressions(&rows);
    if options.compare.is_some() && !regressions.is_empty() {
        return Err(format!(
            "{} bench(es) run more instructions than {} by more than {}%: {}",
            regressions.len(),
            baseline_label.unwrap_or_default(),
            options.threshold,
            regressions.join(", ")
        ));
    }
    Ok(())
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        threshold: DEFAULT_THRESHOLD_PCT,
        ..Options::default()
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().cloned().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--instructions" => options.measure = Measure::Instructions,
            "--wall" => options.measure = Measure::Wall,
            "--save" => options.save = Some(value("--save")?),
            "--compare" => options.compare = Some(value("--compare")?),
            "--threshold" => {
                let text = value("--threshold")?;
                options.threshold = text
                    .trim_end_matches('%')
                    .parse()
                    .ok()
                    .filter(|t: &f64| *t >= 0.0)
                    .ok_or(format!("--threshold takes a percentage, got {text:?}"))?;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            filter => options.filter = Some(filter.to_owned()),
        }
    }
    Ok(options)
}

/// Adds instruction counts to the figures of the same id, and the scenarios criterion did
/// not measure as figures of their own. With a filter, only ids containing it are kept.
fn merge_instructions(
    figures: &mut Vec<Figure>,
    counts: std::collections::BTreeMap<String, u64>,
    filter: Option<&str>,
) {
    for (id, count) in counts {
        if filter.is_some_and(|filter| !id.contains(filter)) {
            continue;
        }
        match figures.iter_mut().find(|f| f.id == id) {
            Some(figure) => figure.instructions = Some(count),
            None => figures.push(Figure {
                id,
                instructions: Some(count),
                ..Figure::default()
            }),
        }
    }
    figures.sort_by(|a, b| a.id.cmp(&b.id));
}

/// A saved baseline: a name under `target/xtask-bench/baselines/`, or a path from the
/// workspace root when it has a `/` or ends in `.json`.
fn baseline_path(name: &str) -> PathBuf {
    if name.contains('/') || name.ends_with(".json") {
        return root().join(name);
    }
    target_dir()
        .join("xtask-bench")
        .join("baselines")
        .join(format!("{name}.json"))
}

fn report_json(git: &str, date: &str, figures: &[Figure]) -> Value {
    json!({ "git": git, "date": date, "results": figures_to_json(figures) })
}

pub(crate) fn figures_to_json(figures: &[Figure]) -> Value {
    figures
        .iter()
        .map(|f| {
            let mut result = json!({ "id": f.id, "ns": f.ns, "bytes": f.bytes });
            if let Some(instructions) = f.instructions {
                result["instructions"] = json!(instructions);
            }
            if !f.values.is_empty() {
                let values: serde_json::Map<String, Value> = f
                    .values
                    .iter()
                    .map(|(name, value)| (name.clone(), json!(value)))
                    .collect();
                result["values"] = Value::Object(values);
            }
            if let Some(note) = &f.note {
                result["note"] = json!(note);
            }
            result
        })
        .collect()
}

/// The figures of a report (`latest.json`, a baseline, a history line).
pub(crate) fn figures_from(report: &Value) -> Vec<Figure> {
    report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(Figure {
                id: r["id"].as_str()?.to_owned(),
                ns: r["ns"].as_f64(),
                bytes: r["bytes"].as_u64(),
                instructions: r["instructions"].as_u64(),
                values: custom::values(&r["values"]),
                note: r["note"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

fn read_report(path: &Path) -> Result<Vec<Figure>> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let report: Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    if !report["results"].is_array() {
        return Err(format!("{} has no results", path.display()));
    }
    Ok(figures_from(&report))
}

fn write_json(path: &Path, value: &Value) -> Result {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn git_sha() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn parses_options() {
        let options = parse(&args(&[
            "json",
            "--quick",
            "--compare",
            "main",
            "--threshold",
            "5%",
        ]))
        .unwrap();
        assert_eq!(options.filter.as_deref(), Some("json"));
        assert!(options.quick);
        assert_eq!(options.compare.as_deref(), Some("main"));
        assert_eq!(options.threshold, 5.0);
        assert_eq!(options.measure, Measure::Both);
        assert_eq!(
            parse(&args(&["--instructions"])).unwrap().measure,
            Measure::Instructions
        );
        assert_eq!(parse(&args(&["--wall"])).unwrap().measure, Measure::Wall);
        assert!(parse(&args(&["--bogus"])).is_err());
        assert!(parse(&args(&["--save"])).is_err());
        assert!(parse(&args(&["--threshold", "-1"])).is_err());
    }

    #[test]
    fn instructions_gate_at_two_percent_by_default() {
        assert_eq!(parse(&[]).unwrap().threshold, 2.0);
    }

    #[test]
    fn a_baseline_is_a_name_or_a_path_from_the_root() {
        assert_eq!(
            baseline_path("main"),
            target_dir().join("xtask-bench/baselines/main.json")
        );
        assert_eq!(
            baseline_path("benches/baseline/instructions.json"),
            root().join("benches/baseline/instructions.json")
        );
    }

    #[test]
    fn instruction_counts_join_the_wall_times_of_the_same_id() {
        let mut figures = vec![Figure {
            id: "layer/none/passthrough".to_owned(),
            ns: Some(120.0),
            ..Figure::default()
        }];
        let counts = [
            ("layer/none/passthrough".to_owned(), 3583),
            ("json/strip_nulls/towerkit/1MB".to_owned(), 14_480_005),
            ("compress/br/100KB/towerkit".to_owned(), 1),
        ]
        .into_iter()
        .collect();
        merge_instructions(&mut figures, counts, Some("s"));
        let ids: Vec<&str> = figures.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "compress/br/100KB/towerkit",
                "json/strip_nulls/towerkit/1MB",
                "layer/none/passthrough"
            ]
        );
        assert_eq!(figures[2].ns, Some(120.0));
        assert_eq!(figures[2].instructions, Some(3583));
        assert_eq!(figures[1].ns, None);
    }

    #[test]
    fn reports_keep_the_foundation_format_and_add_instructions() {
        let figures = vec![
            Figure {
                id: "json/strip_nulls/towerkit/1MB".to_owned(),
                ns: Some(1.5e6),
                bytes: Some(1_000_000),
                instructions: Some(14_480_005),
                ..Figure::default()
            },
            Figure {
                id: "json/strip_nulls/peer/1MB".to_owned(),
                ns: Some(9.0e6),
                ..Figure::default()
            },
            Figure {
                id: "cache/collapse/4_instances".to_owned(),
                values: vec![
                    ("origin_calls_per_round_mean".to_owned(), 4.0),
                    ("added_wait_p99_ms".to_owned(), 3.25),
                ],
                note: Some("target: not met".to_owned()),
                ..Figure::default()
            },
        ];
        let report = report_json("abc", "2026-11-23T05:55:42Z", &figures);
        assert_eq!(report["git"], "abc");
        assert_eq!(
            report["results"][0],
            json!({"id": "json/strip_nulls/towerkit/1MB", "ns": 1.5e6, "bytes": 1_000_000, "instructions": 14_480_005})
        );
        assert_eq!(
            report["results"][1],
            json!({"id": "json/strip_nulls/peer/1MB", "ns": 9.0e6, "bytes": null})
        );
        // A custom result keeps its values in the bench's order, and its note.
        assert_eq!(
            serde_json::to_string(&report["results"][2]).unwrap(),
            r#"{"id":"cache/collapse/4_instances","ns":null,"bytes":null,"values":{"origin_calls_per_round_mean":4.0,"added_wait_p99_ms":3.25},"note":"target: not met"}"#
        );
        assert_eq!(figures_from(&report), figures);
    }

    #[test]
    fn the_committed_baseline_reads_and_every_figure_has_instructions() {
        let figures = read_report(&root().join("benches/baseline/instructions.json")).unwrap();
        assert!(!figures.is_empty());
        assert!(
            figures
                .iter()
                .all(|f| f.instructions.is_some_and(|i| i > 0)),
            "{figures:?}"
        );
        assert!(
            figures.iter().any(|f| f.id == "layer/none/passthrough"),
            "the reference of every layer is in the baseline"
        );
    }
}
