//! What the benches that are not a time per iteration share (`harness = false` benches such
//! as `collapse` and `refresh`): their command line, as `cargo bench` and `cargo xtask
//! bench` pass it, and the result file `cargo xtask bench` reads (xtask's `bench/custom.rs`).

use std::time::Duration;

/// What the command line asks for.
#[derive(Debug)]
pub struct Options {
    /// `--bench`: measure (else one round, as a check, as under `cargo test --benches`).
    pub bench: bool,
    /// `--list`: name the bench and do nothing else.
    pub list: bool,
    /// A filter: the bench runs only when its id contains it.
    pub filter: Option<String>,
    /// `--sample-size N`: the number of rounds (`cargo xtask bench --quick` passes 10).
    pub rounds: usize,
}

impl Options {
    /// Reads the arguments after the program name; `rounds` is the default round count.
    pub fn parse(args: impl Iterator<Item = String>, rounds: usize) -> Self {
        // criterion's options that take a value, so that the value is not read as a filter.
        const WITH_VALUE: &[&str] = &[
            "--warm-up-time",
            "--measurement-time",
            "--sample-size",
            "--nresamples",
            "--noise-threshold",
            "--confidence-level",
            "--significance-level",
            "--save-baseline",
            "--baseline",
            "--baseline-lenient",
            "--load-baseline",
            "--profile-time",
            "--output-format",
            "--color",
            "--plotting-backend",
            "--format",
            "-c",
            "-s",
            "-b",
        ];
        let mut options = Options {
            bench: false,
            list: false,
            filter: None,
            rounds,
        };
        let mut args = args;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bench" => options.bench = true,
                "--list" => options.list = true,
                "--sample-size" => {
                    if let Some(n) = args.next().and_then(|n| n.parse().ok()) {
                        options.rounds = std::cmp::max(n, 1);
                    }
                }
                flag if WITH_VALUE.contains(&flag) => {
                    args.next();
                }
                flag if flag.starts_with('-') => {}
                filter => options.filter = Some(filter.to_owned()),
            }
        }
        options
    }

    /// Whether the bench `id` is to run at all (and, for `--list`, names it).
    pub fn selects(&self, id: &str) -> bool {
        if self.list {
            println!("{id}: bench");
            return false;
        }
        self.filter.as_deref().is_none_or(|f| id.contains(f))
    }

    /// The rounds to run: all of them when measuring, one as a check.
    pub fn rounds_to_run(&self) -> usize {
        if self.bench { self.rounds } else { 1 }
    }

    /// Writes `result` (`{"id", "values", "note"}`) where `cargo xtask bench` collects it
    /// (`TOWERKIT_BENCH_RESULTS`), when measuring under it.
    pub fn write_result(&self, id: &str, result: &serde_json::Value) {
        if !self.bench {
            return;
        }
        let Some(dir) = std::env::var_os("TOWERKIT_BENCH_RESULTS") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let path = dir.join(format!("{}.json", id.replace('/', "_")));
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::write(&path, serde_json::to_vec_pretty(result).unwrap_or_default())
        });
        if let Err(error) = written {
            println!("{id}: cannot write {}: {error}", path.display());
        }
    }
}

/// A duration in milliseconds, with two decimals.
pub fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Options {
        Options::parse(args.iter().map(|s| (*s).to_owned()), 30)
    }

    #[test]
    fn criterion_values_are_not_read_as_filters() {
        let options = parse(&[
            "--bench",
            "--measurement-time",
            "2",
            "--sample-size",
            "10",
            "refresh",
        ]);
        assert!(options.bench);
        assert_eq!(options.rounds, 10);
        assert_eq!(options.filter.as_deref(), Some("refresh"));
        assert!(options.selects("cache/refresh_ahead/hot_key"));
        assert!(!options.selects("cache/collapse/4_instances"));
        assert_eq!(options.rounds_to_run(), 10);
    }

    #[test]
    fn without_bench_one_round_checks() {
        let options = parse(&["--sample-size", "0"]);
        assert!(!options.bench);
        assert_eq!(options.rounds, 1);
        assert_eq!(options.rounds_to_run(), 1);
        assert!(options.selects("anything"));
    }
}
