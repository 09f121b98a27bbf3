//! The history of saved runs: `target/xtask-bench/history.jsonl`, one JSON object per line
//! (`{"git", "date", "name", "results"}`), appended by every `--save`.

use std::io::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Figure, figures_from, figures_to_json};
use crate::Result;

/// One saved run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    /// The commit measured (`git rev-parse HEAD`).
    pub(crate) git: String,
    /// When it ran, RFC 3339 in UTC.
    pub(crate) date: String,
    /// The baseline name it was saved as.
    pub(crate) name: String,
    pub(crate) figures: Vec<Figure>,
}

/// Appends `run` as one line to the history file at `path`.
pub(crate) fn append(path: &Path, run: &Run) -> Result {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let line = json!({
        "git": run.git,
        "date": run.date,
        "name": run.name,
        "results": figures_to_json(&run.figures),
    });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    writeln!(file, "{line}").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Every run in the history file, oldest first; none when the file does not exist. A line
/// that does not parse (a run cut short while writing) is skipped.
pub(crate) fn read(path: &Path) -> Result<Vec<Run>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|value| Run {
            git: value["git"].as_str().unwrap_or("unknown").to_owned(),
            date: value["date"].as_str().unwrap_or_default().to_owned(),
            name: value["name"].as_str().unwrap_or_default().to_owned(),
            figures: figures_from(&value),
        })
        .collect())
}

/// `time` as RFC 3339 in UTC to the second (`2026-11-23T05:55:42Z`).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_dates_in_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2000-02-29 (a leap day in a century leap year) 12:34:56.
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_827_696)),
            "2000-02-29T12:34:56Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_798_761_599)),
            "2026-12-31T23:59:59Z"
        );
    }

    #[test]
    fn saved_runs_are_appended_and_read_back_in_order() {
        let dir = std::env::temp_dir().join(format!("xtask-history-{}", std::process::id()));
        let path = dir.join("history.jsonl");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(read(&path).unwrap().is_empty(), "no file, no history");
        let run = |git: &str, instructions: u64| Run {
            git: git.to_owned(),
            date: "2026-11-23T05:55:42Z".to_owned(),
            name: "main".to_owned(),
            figures: vec![Figure {
                id: "layer/none/passthrough".to_owned(),
                ns: Some(120.5),
                instructions: Some(instructions),
                ..Figure::default()
            }],
        };
        append(&path, &run("aaa", 3583)).unwrap();
        append(&path, &run("bbb", 3600)).unwrap();
        // A line cut short by an interrupted run does not hide the others.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"git\": \"cc")
            .unwrap();
        let runs = read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(runs, vec![run("aaa", 3583), run("bbb", 3600)]);
    }
}
