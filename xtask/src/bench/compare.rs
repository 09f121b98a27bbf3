//! The table `cargo xtask bench` prints: each bench next to its reference from the same run
//! and against a baseline, with regressions marked.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Figure;
use super::references::reference_of;

/// Wall time is noisy on shared machines: a slowdown beyond this is shown, never gated.
pub(crate) const WALL_WARNING_PCT: f64 = 10.0;

/// What a bench's change against the baseline means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No baseline figure to compare with.
    New,
    /// Within the thresholds.
    Same,
    /// Instructions fell by more than the threshold.
    Faster,
    /// Instructions grew by more than the threshold: fails `--compare`.
    Regression,
    /// Wall time grew by more than [`WALL_WARNING_PCT`], instructions did not regress.
    WallWarning,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) ns: Option<f64>,
    pub(crate) instructions: Option<u64>,
    /// The reference's id, when the bench has one.
    pub(crate) reference: Option<String>,
    /// Wall time / the reference's wall time, both from this run.
    pub(crate) ns_ratio: Option<f64>,
    /// Instructions / the reference's instructions, both from this run.
    pub(crate) instructions_ratio: Option<f64>,
    /// Instructions against the baseline, in percent.
    pub(crate) instructions_delta: Option<f64>,
    /// Wall time against the baseline, in percent.
    pub(crate) ns_delta: Option<f64>,
    pub(crate) verdict: Verdict,
}

impl Row {
    /// The layer (the first two segments of the id: `json/strip_nulls`, `layer/timing`).
    pub(crate) fn layer(&self) -> &str {
        split_id(&self.id).0
    }

    /// The scenario (the rest of the id: `towerkit/1MB`, `passthrough`).
    pub(crate) fn scenario(&self) -> &str {
        split_id(&self.id).1
    }
}

/// Rows for `figures`, ratios against references found among `figures`, deltas against
/// `baseline`; instructions beyond `threshold` percent are regressions.
pub(crate) fn rows(figures: &[Figure], baseline: Option<&[Figure]>, threshold: f64) -> Vec<Row> {
    let by_id: BTreeMap<&str, &Figure> = figures.iter().map(|f| (f.id.as_str(), f)).collect();
    let before: BTreeMap<&str, &Figure> = baseline
        .unwrap_or_default()
        .iter()
        .map(|f| (f.id.as_str(), f))
        .collect();
    figures
        .iter()
        .map(|figure| {
            let reference = reference_of(&figure.id);
            let reference_figure = reference.as_deref().and_then(|id| by_id.get(id));
            let ns_ratio = ratio(figure.ns, reference_figure.and_then(|r| r.ns));
            let instructions_ratio = ratio(
                figure.instructions.map(|i| i as f64),
                reference_figure.and_then(|r| r.instructions.map(|i| i as f64)),
            );
            let old = before.get(figure.id.as_str());
            let instructions_delta = delta(
                figure.instructions.map(|i| i as f64),
                old.and_then(|o| o.instructions.map(|i| i as f64)),
            );
            let ns_delta = delta(figure.ns, old.and_then(|o| o.ns));
            let verdict = match (instructions_delta, ns_delta) {
                (None, None) => Verdict::New,
                (Some(d), _) if d > threshold => Verdict::Regression,
                (_, Some(d)) if d > WALL_WARNING_PCT => Verdict::WallWarning,
                (Some(d), _) if d < -threshold => Verdict::Faster,
                _ => Verdict::Same,
            };
            Row {
                id: figure.id.clone(),
                ns: figure.ns,
                instructions: figure.instructions,
                reference,
                ns_ratio,
                instructions_ratio,
                instructions_delta,
                ns_delta,
                verdict,
            }
        })
        .collect()
}

/// The ids whose instruction count regressed.
pub(crate) fn regressions(rows: &[Row]) -> Vec<&str> {
    rows.iter()
        .filter(|row| row.verdict == Verdict::Regression)
        .map(|row| row.id.as_str())
        .collect()
}

/// Ids in `baseline` that this run did not measure.
pub(crate) fn missing<'a>(figures: &[Figure], baseline: &'a [Figure]) -> Vec<&'a str> {
    baseline
        .iter()
        .filter(|old| !figures.iter().any(|f| f.id == old.id))
        .map(|old| old.id.as_str())
        .collect()
}

/// The table as text; `color` adds ANSI colours (red for regressions, yellow for wall-time
/// warnings, green for improvements).
pub(crate) fn render(rows: &[Row], baseline_label: Option<&str>, color: bool) -> String {
    let headers = [
        "layer",
        "scenario",
        "ns/iter",
        "instr/iter",
        "ns ÷ ref",
        "instr ÷ ref",
        "Δ instr",
        "Δ ns",
        "reference",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|row| {
            [
                row.layer().to_owned(),
                row.scenario().to_owned(),
                row.ns.map(format_ns).unwrap_or_else(|| "-".to_owned()),
                row.instructions
                    .map(format_count)
                    .unwrap_or_else(|| "-".to_owned()),
                format_ratio(row.ns_ratio, row.ns.is_some() && row.reference.is_some()),
                format_ratio(
                    row.instructions_ratio,
                    row.instructions.is_some() && row.reference.is_some(),
                ),
                format_delta(row.instructions_delta),
                format_delta(row.ns_delta),
                row.reference.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    match baseline_label {
        Some(label) => {
            let _ = writeln!(out, "Δ against {label}");
        }
        None => out.push_str("no baseline to compare with (save one with --save NAME)\n"),
    }
    push_line(&mut out, &headers.map(str::to_owned), &widths, None, "");
    for (row, line) in rows.iter().zip(&cells) {
        let (mark, colour) = match row.verdict {
            Verdict::Regression => ("  REGRESSION", "31"),
            Verdict::WallWarning => ("  slower (wall time only: not gated)", "33"),
            Verdict::Faster => ("  faster", "32"),
            Verdict::New | Verdict::Same => ("", ""),
        };
        let colour = (color && !colour.is_empty()).then_some(colour);
        push_line(&mut out, line, &widths, colour, mark);
    }
    out
}

fn push_line(
    out: &mut String,
    cells: &[String; 9],
    widths: &[usize; 9],
    colour: Option<&str>,
    mark: &str,
) {
    if let Some(colour) = colour {
        let _ = write!(out, "\x1b[{colour}m");
    }
    for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
        let pad = width - cell.chars().count();
        // Names read left-aligned, figures right-aligned.
        if index < 2 || index == 8 {
            let _ = write!(out, "{cell}{}  ", " ".repeat(pad));
        } else {
            let _ = write!(out, "{}{cell}  ", " ".repeat(pad));
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
    out.push_str(mark);
    if colour.is_some() {
        out.push_str("\x1b[0m");
    }
    out.push('\n');
}

/// `json/strip_nulls/towerkit/1MB` → (`json/strip_nulls`, `towerkit/1MB`).
pub(crate) fn split_id(id: &str) -> (&str, &str) {
    let mut cut = id.match_indices('/').map(|(i, _)| i);
    match (cut.next(), cut.next()) {
        (Some(_), Some(second)) => (&id[..second], &id[second + 1..]),
        _ => (id, ""),
    }
}

fn ratio(value: Option<f64>, reference: Option<f64>) -> Option<f64> {
    match (value, reference) {
        (Some(value), Some(reference)) if reference > 0.0 => Some(value / reference),
        _ => None,
    }
}

fn delta(now: Option<f64>, before: Option<f64>) -> Option<f64> {
    match (now, before) {
        (Some(now), Some(before)) if before > 0.0 => Some((now - before) / before * 100.0),
        _ => None,
    }
}

/// Nanoseconds with a unit that keeps three or four significant digits.
pub(crate) fn format_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// `14480005` → `14,480,005`.
pub(crate) fn format_count(count: u64) -> String {
    let digits = count.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `0.136` → `0.14x`; a figure whose reference was not measured in this run shows `?`.
pub(crate) fn format_ratio(ratio: Option<f64>, has_reference: bool) -> String {
    match ratio {
        Some(ratio) if ratio >= 10.0 => format!("{ratio:.1}x"),
        Some(ratio) => format!("{ratio:.2}x"),
        None if has_reference => "?".to_owned(),
        None => "-".to_owned(),
    }
}

pub(crate) fn format_delta(delta: Option<f64>) -> String {
    delta
        .map(|d| format!("{d:+.2}%"))
        .unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(id: &str, ns: Option<f64>, instructions: Option<u64>) -> Figure {
        Figure {
            id: id.to_owned(),
            ns,
            instructions,
            ..Figure::default()
        }
    }

    #[test]
    fn instructions_beyond_the_threshold_are_regressions_and_wall_time_only_warns() {
        let baseline = [
            figure("layer/a/passthrough", Some(100.0), Some(1000)),
            figure("layer/b/passthrough", Some(100.0), Some(1000)),
            figure("layer/c/passthrough", Some(100.0), Some(1000)),
            figure("layer/d/passthrough", Some(100.0), Some(1000)),
        ];
        let now = [
            // 2.5 % more instructions: gated at 2 %.
            figure("layer/a/passthrough", Some(100.0), Some(1025)),
            // 1.5 % more instructions, 3x the wall time: only a warning.
            figure("layer/b/passthrough", Some(300.0), Some(1015)),
            // 5 % fewer instructions.
            figure("layer/c/passthrough", Some(100.0), Some(950)),
            figure("layer/d/passthrough", Some(95.0), Some(1000)),
            figure("layer/e/passthrough", Some(1.0), Some(1)),
        ];
        let rows = rows(&now, Some(&baseline), 2.0);
        let verdicts: Vec<Verdict> = rows.iter().map(|r| r.verdict).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Regression,
                Verdict::WallWarning,
                Verdict::Faster,
                Verdict::Same,
                Verdict::New
            ]
        );
        assert_eq!(regressions(&rows), ["layer/a/passthrough"]);
        assert_eq!(rows[0].instructions_delta, Some(2.5));
        assert_eq!(rows[1].ns_delta, Some(200.0));
    }

    #[test]
    fn wall_time_alone_never_gates() {
        let baseline = [figure("json/x/towerkit/1MB", Some(100.0), None)];
        let now = [figure("json/x/towerkit/1MB", Some(500.0), None)];
        let rows = rows(&now, Some(&baseline), 2.0);
        assert_eq!(rows[0].verdict, Verdict::WallWarning);
        assert!(regressions(&rows).is_empty());
    }

    #[test]
    fn ratios_are_taken_against_the_reference_of_the_same_run() {
        let now = [
            figure("json/strip_nulls/serde_value/1MB", Some(800.0), Some(1000)),
            figure("json/strip_nulls/towerkit/1MB", Some(100.0), Some(250)),
            figure("layer/timing/passthrough", Some(10.0), Some(100)),
        ];
        let rows = rows(&now, None, 2.0);
        assert_eq!(rows[0].reference, None);
        assert_eq!(rows[0].ns_ratio, None);
        assert_eq!(
            rows[1].reference.as_deref(),
            Some("json/strip_nulls/serde_value/1MB")
        );
        assert_eq!(rows[1].ns_ratio, Some(0.125));
        assert_eq!(rows[1].instructions_ratio, Some(0.25));
        // The bare service was not measured in this run: no ratio rather than a stale one.
        assert_eq!(rows[2].ns_ratio, None);
        assert_eq!(format_ratio(rows[2].ns_ratio, true), "?");
        assert!(rows.iter().all(|r| r.verdict == Verdict::New));
    }

    #[test]
    fn lists_baseline_ids_the_run_did_not_measure() {
        let baseline = [
            figure("a/b/c", None, Some(1)),
            figure("d/e/f", None, Some(1)),
        ];
        let now = [figure("a/b/c", None, Some(1))];
        assert_eq!(missing(&now, &baseline), ["d/e/f"]);
    }

    #[test]
    fn the_table_marks_regressions_and_names_the_reference() {
        let baseline = [figure("layer/a/passthrough", Some(100.0), Some(1000))];
        let now = [
            figure("layer/none/passthrough", Some(50.0), Some(500)),
            figure("layer/a/passthrough", Some(100.0), Some(1100)),
        ];
        let text = render(&rows(&now, Some(&baseline), 2.0), Some("main"), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Δ against main");
        assert!(lines[1].starts_with("layer "), "{text}");
        assert!(
            lines[2].starts_with("layer/none  passthrough") && !lines[2].contains("REGRESSION"),
            "{text}"
        );
        assert!(lines[3].contains("2.00x"), "{text}");
        assert!(lines[3].contains("+10.00%"), "{text}");
        assert!(lines[3].contains("layer/none/passthrough"), "{text}");
        assert!(lines[3].ends_with("REGRESSION"), "{text}");
        let coloured = render(&rows(&now, Some(&baseline), 2.0), Some("main"), true);
        assert!(coloured.contains("\x1b[31m"));
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn splits_ids_into_layer_and_scenario() {
        assert_eq!(
            split_id("json/strip_nulls/towerkit/1MB"),
            ("json/strip_nulls", "towerkit/1MB")
        );
        assert_eq!(
            split_id("layer/none/passthrough"),
            ("layer/none", "passthrough")
        );
        assert_eq!(split_id("solo"), ("solo", ""));
    }

    #[test]
    fn formats_figures_for_reading() {
        assert_eq!(format_count(14_480_005), "14,480,005");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1000), "1,000");
        assert_eq!(format_ns(950.0), "950.0 ns");
        assert_eq!(format_ns(1_234_567.0), "1.23 ms");
        assert_eq!(format_delta(Some(-0.5)), "-0.50%");
        assert_eq!(format_ratio(Some(12.345), true), "12.3x");
        assert_eq!(format_ratio(None, false), "-");
    }
}
