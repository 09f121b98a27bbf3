//! The open-loop (fixed-rate) generator: oha (the `oha` crate), installed
//! with `cargo install` on first use, run with `-q RATE --latency-correction`.
//!
//! oha schedules request `i` at `start + i / RATE` whatever the responses do, queues it
//! until one of its connections is free, and measures its latency from the scheduled time,
//! so a stalled server shows as latency instead of as fewer requests (coordinated
//! omission). Its JSON gives the transport errors; its per-request records (`--db-url`, a
//! SQLite file read back with the `sqlite3` command) give each request's scheduled, sent
//! and end times, from which the step's percentiles, late sends and per-second timeline are
//! computed here.
//!
//! One limit, oha's: a request's scheduled time is when oha's timer task woke for it, so
//! if the generator itself is starved of CPU (it shares two cores with the service,
//! PostgreSQL and Redis here), that delay is not counted; a busy connection pool is.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::report::{self, Sample, StepReport};
use crate::{Result, cargo, target_dir};

/// The oha release xtask installs and reads: its flags and output formats are pinned with
/// it.
pub(crate) const OHA_VERSION: &str = "1.16.0";

/// The most requests one step may schedule (rate x seconds): every request's times are
/// read back into memory.
pub(crate) const MAX_STEP_REQUESTS: f64 = 2_000_000.0;

/// One open-loop step: `rate` requests per second for `seconds`, over at most
/// `connections` connections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RateStep {
    pub(crate) rate: f64,
    pub(crate) seconds: u64,
    pub(crate) connections: u32,
}

/// The oha binary: `$OHA` when set, else the one xtask installed under
/// `target/xtask-tools`, else an `oha` on the `PATH` of [`OHA_VERSION`], else installed
/// now with `cargo install` (a few minutes, once; never in CI, which runs no load).
pub(crate) fn ensure() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("OHA") {
        return Ok(PathBuf::from(path));
    }
    let root = target_dir().join("xtask-tools");
    let installed = root.join("bin").join("oha");
    for candidate in [installed.clone(), PathBuf::from("oha")] {
        if is_pinned_version(&candidate) {
            return Ok(candidate);
        }
    }
    eprintln!(
        "xtask load: installing oha {OHA_VERSION} with cargo install into {} (once; a few minutes)",
        root.display()
    );
    let started = std::time::Instant::now();
    crate::run_command(
        cargo()
            // With its default features: oha does not build without a TLS backend.
            .args(["install", "oha", "--locked"])
            .args(["--version", &format!("={OHA_VERSION}")])
            .arg("--root")
            .arg(&root)
            .arg("--target-dir")
            .arg(root.join("build")),
    )?;
    eprintln!(
        "xtask load: oha installed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if is_pinned_version(&installed) {
        Ok(installed)
    } else {
        Err(format!(
            "{} does not report oha {OHA_VERSION}",
            installed.display()
        ))
    }
}

fn is_pinned_version(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(OHA_VERSION))
}

/// The read mix of the wrk scenarios as a URL list, one URL a line: oha picks a line at
/// random for each request, so each kind of request appears in its share of lines (55 %
/// list pages, 15 % field selections, 25 % product details, 4 % category pages). The 1 %
/// of writes the wrk mix sends has no place here: oha sends one method per run.
pub(crate) fn urls(port: u16) -> String {
    let base = format!("http://127.0.0.1:{port}");
    let mut lines = Vec::with_capacity(990);
    for i in 0..550 {
        lines.push(format!("{base}/api/products?page={}&limit=20", i % 20 + 1));
    }
    for i in 0..150 {
        lines.push(format!(
            "{base}/api/products?page={}&limit=50&fields=id,name,price_cents",
            i % 5 + 1
        ));
    }
    for i in 0..250 {
        lines.push(format!("{base}/api/products/{}", i * 2 + 1));
    }
    for i in 0..40 {
        lines.push(format!("{base}/api/categories?page={}&limit=20", i % 2 + 1));
    }
    lines.join("\n") + "\n"
}

/// Runs one step with `oha` against the URLs in `urls_file`, keeping its outputs in `dir`
/// (`<name>.oha.json`, `<name>.oha.sqlite`).
pub(crate) fn run(
    oha: &Path,
    dir: &Path,
    name: &str,
    urls_file: &Path,
    step: RateStep,
) -> Result<StepReport> {
    let running = Running::spawn(oha, dir, name, urls_file, step)?;
    let (samples, transport_errors) = running.finish()?;
    Ok(figures(step, &samples, transport_errors))
}

/// An oha process holding one step's rate, started and not yet waited for: two of them
/// overlap in a spike (the steady rate and the spike's extra rate).
#[derive(Debug)]
pub(crate) struct Running {
    child: std::process::Child,
    oha: PathBuf,
    json_path: PathBuf,
    db_path: PathBuf,
}

impl Running {
    /// Starts oha for `step` (see [`run`]).
    pub(crate) fn spawn(
        oha: &Path,
        dir: &Path,
        name: &str,
        urls_file: &Path,
        step: RateStep,
    ) -> Result<Running> {
        let scheduled = step.rate * step.seconds as f64;
        if !(step.rate > 0.0 && scheduled <= MAX_STEP_REQUESTS) {
            return Err(format!(
                "a step of {} req/s for {} s: the rate must be above 0 and rate x seconds at most {MAX_STEP_REQUESTS}",
                step.rate, step.seconds
            ));
        }
        let json_path = dir.join(format!("{name}.oha.json"));
        let db_path = dir.join(format!("{name}.oha.sqlite"));
        // oha appends to an existing database: start each step from none.
        let _ = std::fs::remove_file(&db_path);
        let child = Command::new(oha)
            .args(["--no-tui", "--output-format", "json", "-o"])
            .arg(&json_path)
            .arg("--db-url")
            .arg(&db_path)
            .args(["-q", &step.rate.to_string(), "--latency-correction"])
            .args(["-z", &format!("{}s", step.seconds)])
            // Requests in flight at the end are waited for, not counted as errors.
            .arg("--wait-ongoing-requests-after-deadline")
            .args(["-c", &step.connections.to_string(), "-t", "5s"])
            // As wrk: no Accept-Encoding, so both generators ask for the same responses.
            .arg("--disable-compression")
            .arg("--urls-from-file")
            .arg(urls_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", oha.display()))?;
        Ok(Running {
            child,
            oha: oha.to_owned(),
            json_path,
            db_path,
        })
    }

    /// Waits for oha to end: every answered request's times and the count of requests
    /// that failed in transport.
    pub(crate) fn finish(self) -> Result<(Vec<Sample>, u64)> {
        let output = self
            .child
            .wait_with_output()
            .map_err(|e| format!("waiting for {}: {e}", self.oha.display()))?;
        if !output.status.success() {
            return Err(format!(
                "oha failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let json = std::fs::read_to_string(&self.json_path)
            .map_err(|e| format!("oha wrote no {}: {e}", self.json_path.display()))?;
        let transport_errors = transport_errors(&json)?;
        Ok((samples(&self.db_path)?, transport_errors))
    }
}

/// The step's figures from its requests' samples and oha's count of failed requests.
pub(crate) fn figures(step: RateStep, samples: &[Sample], transport_errors: u64) -> StepReport {
    let seconds = step.seconds as f64;
    let status_errors = samples.iter().filter(|s| s.status >= 400).count() as u64;
    // oha sends request `i` at `i / rate` while that is before the deadline: the one due
    // exactly at the deadline wakes just after it and is dropped.
    let scheduled = (step.rate * seconds).ceil() as u64;
    let attempted = samples.len() as u64 + transport_errors;
    StepReport {
        label: format!("{} req/s", format_rate(step.rate)),
        seconds,
        target_rps: Some(step.rate),
        requests: samples.len() as u64,
        errors: transport_errors + status_errors,
        late: Some(report::late(samples)),
        unsent: Some(scheduled.saturating_sub(attempted)),
        latency_ms: report::latency_percentiles(samples),
        timeline: report::timeline(samples, seconds),
        server: Default::default(),
    }
}

pub(crate) fn format_rate(rate: f64) -> String {
    if rate.fract() == 0.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

/// The requests oha counted as failed (connection errors, timeouts), from its JSON.
pub(crate) fn transport_errors(json: &str) -> Result<u64> {
    let value: Value = serde_json::from_str(json).map_err(|e| format!("oha's JSON: {e}"))?;
    let errors = value
        .get("errorDistribution")
        .and_then(Value::as_object)
        .ok_or("oha's JSON has no errorDistribution")?;
    Ok(errors.values().filter_map(Value::as_u64).sum())
}

/// Every answered request's times, from oha's SQLite records.
fn samples(db: &Path) -> Result<Vec<Sample>> {
    let output = Command::new("sqlite3")
        .args(["-readonly", "-csv"])
        .arg(db)
        .arg("SELECT COALESCE(start_latency_correction, start), start, end, status FROM oha")
        .output()
        .map_err(|e| {
            format!(
                "cannot run sqlite3 to read oha's records: {e} (Debian: apt-get install sqlite3)"
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "sqlite3 {}: {}",
            db.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    parse_samples(&String::from_utf8_lossy(&output.stdout))
}

/// `scheduled,sent,end,status` lines (seconds from the start, HTTP status).
pub(crate) fn parse_samples(csv: &str) -> Result<Vec<Sample>> {
    csv.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split(',').map(str::trim);
            let mut number = || -> Option<f64> { fields.next()?.parse().ok() };
            let (scheduled, sent, ended, status) = (number(), number(), number(), number());
            match (scheduled, sent, ended, status) {
                (Some(scheduled), Some(sent), Some(ended), Some(status))
                    if (100.0..1000.0).contains(&status) =>
                {
                    Ok(Sample {
                        scheduled,
                        sent,
                        ended,
                        status: status as u16,
                    })
                }
                _ => Err(format!("unexpected oha record {line:?}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_list_keeps_the_mix_shares() {
        let urls = urls(8080);
        let lines: Vec<&str> = urls.lines().collect();
        assert_eq!(lines.len(), 990);
        assert!(
            lines
                .iter()
                .all(|l| l.starts_with("http://127.0.0.1:8080/api/"))
        );
        let share = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(share("fields="), 150);
        assert_eq!(share("/api/categories"), 40);
        assert_eq!(share("/api/products/"), 250);
    }

    #[test]
    fn reads_records_and_counts_what_was_not_sent() {
        let samples =
            parse_samples("0.0,0.0,0.002,200\n0.5,0.6,0.61,200\n1.0,1.0,1.001,500\n").unwrap();
        assert_eq!(samples.len(), 3);
        assert!(parse_samples("0.1,x,0.2,200\n").is_err());
        assert!(parse_samples("0.1,0.1,0.2\n").is_err());
        let step = RateStep {
            rate: 4.0,
            seconds: 1,
            connections: 2,
        };
        // Scheduled at 0, 0.25, 0.5 and 0.75: three answered, none failed in transport, one
        // never sent.
        let figures = figures(step, &samples, 0);
        assert_eq!(figures.requests, 3);
        assert_eq!(figures.errors, 1);
        assert_eq!(figures.late, Some(1));
        assert_eq!(figures.unsent, Some(1));
        assert_eq!(figures.label, "4 req/s");
        assert_eq!(figures.latency("max").map(f64::round), Some(110.0));
    }

    #[test]
    fn counts_transport_errors_from_ohas_json() {
        let json = r#"{"summary":{},"errorDistribution":{"connection closed":2,"timeout":3}}"#;
        assert_eq!(transport_errors(json), Ok(5));
        assert_eq!(transport_errors(r#"{"errorDistribution":{}}"#), Ok(0));
        assert!(transport_errors("{}").is_err());
        assert!(transport_errors("not json").is_err());
    }
}
