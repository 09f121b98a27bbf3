//! Results of the benches that are not criterion's: `harness = false` benches whose figure
//! is not a time per iteration (`benches/benches/collapse.rs`: origin calls per round and
//! added waits).
//!
//! `cargo xtask bench` runs them with the criterion benches (one `cargo bench`) and sets
//! [`RESULTS_ENV`] to a directory; each writes one JSON file there,
//! `{"id": "<group>/<function>/<param>", "values": {"<name>": <number>, ...}, "note": "..."}`,
//! and prints its figures itself, so a plain `cargo bench` shows them too. The values are
//! shown below the table and recorded with the run; they are never compared or gated.

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

use super::Figure;

/// The variable naming the directory the benches write their result files to.
pub(crate) const RESULTS_ENV: &str = "TOWERKIT_BENCH_RESULTS";

/// The results written under `dir` since `since`, by id.
pub(crate) fn collect(dir: &Path, since: SystemTime) -> Vec<Figure> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut figures: Vec<Figure> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .filter(|path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified >= since)
        })
        .filter_map(|path| read(&std::fs::read(path).ok()?))
        .collect();
    figures.sort_by(|a, b| a.id.cmp(&b.id));
    figures
}

/// One result file, if it has an id and at least one numeric value.
fn read(bytes: &[u8]) -> Option<Figure> {
    let result: Value = serde_json::from_slice(bytes).ok()?;
    let figure = Figure {
        id: result["id"].as_str()?.to_owned(),
        values: values(&result["values"]),
        note: result["note"].as_str().map(str::to_owned),
        ..Figure::default()
    };
    (!figure.values.is_empty()).then_some(figure)
}

/// The numeric members of a `"values"` object, in its order.
pub(crate) fn values(object: &Value) -> Vec<(String, f64)> {
    object
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.clone(), value.as_f64()?)))
        .collect()
}

/// The figures with values, one block each, for the terminal; empty when there are none.
pub(crate) fn render(figures: &[Figure]) -> String {
    let mut out = String::new();
    for figure in figures.iter().filter(|f| !f.values.is_empty()) {
        let _ = writeln!(out, "{}", figure.id);
        for (name, value) in &figure.values {
            let _ = writeln!(out, "  {name:<30} {}", format_value(*value));
        }
        if let Some(note) = &figure.note {
            let _ = writeln!(out, "  {note}");
        }
    }
    if out.is_empty() {
        return out;
    }
    format!("\nnot a time per iteration (shown, never gated):\n{out}")
}

/// A whole number as such, anything else with two decimals.
pub(crate) fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn collects_results_written_since_the_start_and_skips_the_rest() {
        let dir = std::env::temp_dir().join(format!("xtask-custom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let before = SystemTime::now() - Duration::from_secs(5);
        std::fs::write(
            dir.join("cache_collapse_4_instances.json"),
            r#"{"id": "cache/collapse/4_instances", "values": {"origin_calls_per_round_mean": 4.0, "added_wait_p99_ms": 3.25, "label": "x"}, "note": "target: not met"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("no_values.json"),
            r#"{"id": "a/b/c", "values": {}}"#,
        )
        .unwrap();
        std::fs::write(dir.join("broken.json"), "{\"id\": ").unwrap();
        std::fs::write(dir.join("notes.txt"), "not a result").unwrap();
        let found = collect(&dir, before);
        let later = collect(&dir, SystemTime::now() + Duration::from_secs(60));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            found,
            vec![Figure {
                id: "cache/collapse/4_instances".to_owned(),
                values: vec![
                    ("origin_calls_per_round_mean".to_owned(), 4.0),
                    ("added_wait_p99_ms".to_owned(), 3.25),
                ],
                note: Some("target: not met".to_owned()),
                ..Figure::default()
            }]
        );
        assert!(later.is_empty(), "results older than the run are skipped");
        assert!(collect(&std::env::temp_dir().join("xtask-custom-none"), before).is_empty());
    }

    #[test]
    fn renders_values_below_the_table_and_nothing_without_them() {
        let timed = Figure {
            id: "layer/none/passthrough".to_owned(),
            ns: Some(1.0),
            ..Figure::default()
        };
        assert_eq!(render(std::slice::from_ref(&timed)), "");
        let collapse = Figure {
            id: "cache/collapse/4_instances".to_owned(),
            values: vec![
                ("origin_calls_per_round_max".to_owned(), 4.0),
                ("added_wait_p99_ms".to_owned(), 3.256),
            ],
            note: Some("target: not met".to_owned()),
            ..Figure::default()
        };
        let text = render(&[timed, collapse]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "not a time per iteration (shown, never gated):");
        assert_eq!(lines[2], "cache/collapse/4_instances");
        assert!(lines[3].starts_with("  origin_calls_per_round_max") && lines[3].ends_with(" 4"));
        assert!(lines[4].ends_with(" 3.26"), "{text}");
        assert_eq!(lines[5], "  target: not met");
    }
}
