//! `target/xtask-bench/report.html`: the latest run against its references, and one small
//! chart per bench over the saved history. Plain HTML and inline SVG, no script.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::Figure;
use super::compare::{Row, Verdict, format_count, format_delta, format_ns, format_ratio};
use super::custom::format_value;
use super::history::Run;
use crate::html::escape;

const CHART_WIDTH: f64 = 300.0;
const CHART_HEIGHT: f64 = 110.0;
/// Room for the axis labels around the plot.
const MARGIN_X: f64 = 8.0;
const MARGIN_TOP: f64 = 22.0;
const MARGIN_BOTTOM: f64 = 20.0;
/// The smallest range a chart's vertical axis spans, relative to its highest value.
const MIN_SPAN: f64 = 0.05;

/// The report for `runs` (the saved history, oldest first, with the latest run last) and
/// `rows`, the latest run's table.
pub(crate) fn render(runs: &[Run], rows: &[Row], baseline_label: Option<&str>) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>towerkit benches</title>\n<style>\n\
         body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }\n\
         table { border-collapse: collapse; }\n\
         th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; }\n\
         th { text-align: left; background: #f4f4f4; }\n\
         td.n { text-align: right; font-variant-numeric: tabular-nums; }\n\
         tr.regression td { background: #fdd; } tr.warning td { background: #fff4cc; }\n\
         tr.faster td { background: #e4f6e4; }\n\
         .charts { display: flex; flex-wrap: wrap; gap: 14px; }\n\
         .chart { border: 1px solid #ddd; border-radius: 4px; padding: 4px; }\n\
         .legend span { margin-right: 1.5em; }\n\
         </style>\n</head>\n<body>\n<h1>towerkit benches</h1>\n",
    );
    if let Some(latest) = runs.last() {
        let _ = writeln!(
            out,
            "<p>Latest run: <code>{}</code> at {} ({} benches). Instruction counts (Callgrind) \
             gate regressions; wall times (criterion medians) are for reading and only warn.</p>",
            escape(short_sha(&latest.git)),
            escape(&latest.date),
            latest.figures.len()
        );
    }

    out.push_str("<h2>Latest run against its references</h2>\n");
    let _ = writeln!(
        out,
        "<p>Each ratio divides a bench's figure by its reference's, both measured in this run. \
         Deltas are against {}.</p>",
        baseline_label.map_or_else(|| "nothing (no baseline yet)".to_owned(), escape)
    );
    out.push_str(
        "<table>\n<tr><th>layer</th><th>scenario</th><th>ns/iter</th><th>instr/iter</th>\
         <th>ns ÷ ref</th><th>instr ÷ ref</th><th>Δ instr</th><th>Δ ns</th><th>reference</th></tr>\n",
    );
    for row in rows {
        let class = match row.verdict {
            Verdict::Regression => " class=\"regression\"",
            Verdict::WallWarning => " class=\"warning\"",
            Verdict::Faster => " class=\"faster\"",
            Verdict::New | Verdict::Same => "",
        };
        let _ = writeln!(
            out,
            "<tr{class}><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{}</td></tr>",
            escape(row.layer()),
            escape(row.scenario()),
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
            escape(row.reference.as_deref().unwrap_or_default()),
        );
    }
    out.push_str("</table>\n");

    let custom: Vec<&Figure> = runs
        .last()
        .into_iter()
        .flat_map(|run| run.figures.iter())
        .filter(|figure| !figure.values.is_empty())
        .collect();
    if !custom.is_empty() {
        out.push_str(
            "<h2>Not a time per iteration</h2>\n<p>Figures of the benches that measure something \
             else (origin calls, added waits), as they reported them; never gated.</p>\n\
             <table>\n<tr><th>bench</th><th>figure</th><th>value</th></tr>\n",
        );
        for figure in custom {
            for (name, value) in &figure.values {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                    escape(&figure.id),
                    escape(name),
                    format_value(*value)
                );
            }
            if let Some(note) = &figure.note {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td colspan=\"2\">{}</td></tr>",
                    escape(&figure.id),
                    escape(note)
                );
            }
        }
        out.push_str("</table>\n");
    }

    out.push_str("<h2>History</h2>\n");
    let _ = writeln!(
        out,
        "<p class=\"legend\">{} runs, oldest left. <span style=\"color:#1f5fbf\">━ instructions/iter</span>\
         <span style=\"color:#d9731a\">╌ ns/iter</span> Each line is scaled to its own range \
         (at least 5 % of its values), labelled with its lowest and highest value.</p>",
        runs.len()
    );
    out.push_str("<div class=\"charts\">\n");
    let ids: BTreeSet<&str> = runs
        .iter()
        .flat_map(|run| run.figures.iter().filter(|f| f.is_timed()))
        .map(|f| f.id.as_str())
        .collect();
    for id in ids {
        out.push_str(&chart(id, runs));
    }
    out.push_str("</div>\n</body>\n</html>\n");
    out
}

/// One bench over `runs`, as an inline SVG.
fn chart(id: &str, runs: &[Run]) -> String {
    let figure = |run: &Run| run.figures.iter().find(|f| f.id == id).cloned();
    let instructions: Vec<(usize, f64)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| Some((i, figure(run)?.instructions? as f64)))
        .collect();
    let ns: Vec<(usize, f64)> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| Some((i, figure(run)?.ns?)))
        .collect();
    let mut svg = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_WIDTH}\" \
         height=\"{CHART_HEIGHT}\" viewBox=\"0 0 {CHART_WIDTH} {CHART_HEIGHT}\" role=\"img\">\
         <title>{}</title><text x=\"{MARGIN_X}\" y=\"14\" font-size=\"12\" font-weight=\"600\">{}</text>",
        escape(id),
        escape(id)
    );
    let bottom = CHART_HEIGHT - MARGIN_BOTTOM;
    let _ = write!(
        svg,
        "<line x1=\"{MARGIN_X}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"#bbb\"/>",
        CHART_WIDTH - MARGIN_X
    );
    svg.push_str(&series(
        &instructions,
        runs.len(),
        ("#1f5fbf", "", true),
        |v| format_count(v as u64),
    ));
    svg.push_str(&series(
        &ns,
        runs.len(),
        ("#d9731a", " stroke-dasharray=\"4 3\"", false),
        format_ns,
    ));
    if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
        let _ = write!(
            svg,
            "<text x=\"{MARGIN_X}\" y=\"{}\" font-size=\"10\" fill=\"#666\">{}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" fill=\"#666\" text-anchor=\"end\">{}</text>",
            CHART_HEIGHT - 5.0,
            escape(short_sha(&first.git)),
            CHART_WIDTH - MARGIN_X,
            CHART_HEIGHT - 5.0,
            escape(short_sha(&last.git)),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A polyline through `points` (run index, value), with dots and the lowest and highest
/// value written at the right-hand end: above the line for the first series drawn
/// (`label_above`), below it for the second, so the two never overlap on flat lines.
///
/// Each series is scaled to its own range, but never to less than [`MIN_SPAN`] of its
/// values: a 0.03 % wobble stays a flat line, a 5 % step shows.
fn series(
    points: &[(usize, f64)],
    runs: usize,
    style: (&str, &str, bool),
    label: impl Fn(f64) -> String,
) -> String {
    let (colour, dash, label_above) = style;
    if points.is_empty() {
        return String::new();
    }
    let low = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let high = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let span = (high - low)
        .max(high.abs() * MIN_SPAN)
        .max(f64::MIN_POSITIVE);
    let floor = (high + low) / 2.0 - span / 2.0;
    let top = MARGIN_TOP;
    let bottom = CHART_HEIGHT - MARGIN_BOTTOM - 4.0;
    // The plot keeps the right third for the value labels.
    let width = (CHART_WIDTH - 2.0 * MARGIN_X) * 0.62;
    let x = |index: usize| {
        if runs <= 1 {
            MARGIN_X + width
        } else {
            MARGIN_X + width * index as f64 / (runs - 1) as f64
        }
    };
    let y = |value: f64| bottom - (value - floor) / span * (bottom - top);
    let coordinates: Vec<String> = points
        .iter()
        .map(|&(i, v)| format!("{:.1},{:.1}", x(i), y(v)))
        .collect();
    let mut svg = format!(
        "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"{dash} points=\"{}\"/>",
        coordinates.join(" ")
    );
    for &(i, v) in points {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.2\" fill=\"{colour}\"><title>{}</title></circle>",
            x(i),
            y(v),
            escape(&label(v))
        );
    }
    let text_x = MARGIN_X + width + 8.0;
    let dy = if label_above { -3.0 } else { 11.0 };
    let mut labels = vec![high];
    // Two labels closer than a line of text would overlap: the highest is enough.
    if y(low) - y(high) > 12.0 {
        labels.push(low);
    }
    for value in labels {
        let _ = write!(
            svg,
            "<text x=\"{text_x:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"{colour}\">{}</text>",
            // Kept clear of the title and of the commit names below the axis.
            (y(value) + dy).clamp(MARGIN_TOP - 2.0, CHART_HEIGHT - MARGIN_BOTTOM - 2.0),
            escape(&label(value))
        );
    }
    svg
}

fn short_sha(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::super::compare::rows;
    use super::*;

    fn run(git: &str, figures: &[(&str, f64, u64)]) -> Run {
        Run {
            git: git.to_owned(),
            date: "2026-11-23T05:55:42Z".to_owned(),
            name: "main".to_owned(),
            figures: figures
                .iter()
                .map(|&(id, ns, instructions)| Figure {
                    id: id.to_owned(),
                    ns: Some(ns),
                    instructions: Some(instructions),
                    ..Figure::default()
                })
                .collect(),
        }
    }

    #[test]
    fn draws_one_chart_per_bench_over_the_history_and_the_peer_table() {
        let runs = [
            run(
                "1111111111aaaa",
                &[
                    ("layer/none/passthrough", 100.0, 3500),
                    ("layer/timing/passthrough", 150.0, 4800),
                ],
            ),
            run(
                "2222222222bbbb",
                &[
                    ("layer/none/passthrough", 110.0, 3500),
                    ("layer/timing/passthrough", 170.0, 4850),
                ],
            ),
        ];
        let rows = rows(&runs[1].figures, Some(&runs[0].figures), 2.0);
        let html = render(&runs, &rows, Some("the last saved run"));
        assert_eq!(html.matches("<svg").count(), 2);
        assert_eq!(
            html.matches("<polyline").count(),
            4,
            "instructions and ns per bench"
        );
        assert!(html.contains("<title>layer/timing/passthrough</title>"));
        assert!(html.contains("1111111111") && html.contains("2222222222"));
        // The peer table: the timing layer against the bare service, 4850 / 3500.
        assert!(html.contains("<td>layer/timing</td><td>passthrough</td>"));
        assert!(html.contains("<td class=\"n\">1.39x</td>"));
        assert!(html.contains("<td>layer/none/passthrough</td>"));
        // 13 % slower wall time, 1 % more instructions: a warning, not a regression.
        assert!(html.contains("<tr class=\"warning\">"), "{html}");
        assert!(!html.contains("<tr class=\"regression\">"), "{html}");
        assert!(!html.contains("<script"));
    }

    #[test]
    fn custom_results_get_a_table_and_no_empty_chart() {
        let mut latest = run("abc", &[("layer/none/passthrough", 100.0, 3500)]);
        latest.figures.push(Figure {
            id: "cache/collapse/4_instances".to_owned(),
            values: vec![("origin_calls_per_round_mean".to_owned(), 4.0)],
            note: Some("target: not <met>".to_owned()),
            ..Figure::default()
        });
        let html = render(&[latest], &[], None);
        assert_eq!(html.matches("<svg").count(), 1, "{html}");
        assert!(html.contains("<h2>Not a time per iteration</h2>"));
        assert!(html.contains(
            "<tr><td>cache/collapse/4_instances</td><td>origin_calls_per_round_mean</td><td class=\"n\">4</td></tr>"
        ));
        assert!(html.contains("target: not &lt;met&gt;"));
    }

    #[test]
    fn a_flat_series_and_a_single_run_still_draw() {
        let runs = [run("abc", &[("json/x/towerkit/1MB", 5.0, 7)])];
        let html = render(&runs, &[], None);
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("nothing (no baseline yet)"));
        assert!(!html.contains("NaN"));
    }

    /// The y coordinates of the polyline in `svg`.
    fn heights(svg: &str) -> Vec<f64> {
        let points = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        points
            .split(' ')
            .map(|point| point.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn a_small_wobble_stays_flat_and_a_regression_shows() {
        let style = ("#000", "", true);
        let wobble = series(&[(0, 1_090_812.0), (1, 1_091_161.0)], 2, style, |v| {
            v.to_string()
        });
        let wobble = heights(&wobble);
        assert!((wobble[0] - wobble[1]).abs() < 1.0, "{wobble:?}");
        let step = series(&[(0, 27_645.0), (1, 29_505.0)], 2, style, |v| v.to_string());
        let step = heights(&step);
        assert!(step[0] - step[1] > 40.0, "{step:?}");
    }

    #[test]
    fn escapes_text() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
