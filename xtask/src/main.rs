//! Project automation for towerkit, run as `cargo xtask <task>`.
//!
//! - `test [ARGS]`: makes sure PostgreSQL and Redis are reachable (starting throwaway ones
//!   when they are not), that promtool runs (extracting it from Debian's `prometheus`
//!   package when missing) and that Varnish loads the xkey module (installing Debian's
//!   `varnish` and `varnish-modules` when missing), then runs every test in the workspace.
//! - `run [--instances N]`: the same service check, then the example service, with a
//!   development `API_TOKENS` and the admin listener on `ADMIN_BIND_ADDR` (both printed)
//!   unless set; with `--instances N`, N instances on consecutive ports (API and admin)
//!   sharing PostgreSQL and Redis, all stopped together.
//! - `bench [FILTER] [--quick] [--save NAME] [--compare NAME] [--threshold PCT]`: criterion
//!   benches, written to `target/xtask-bench/latest.json`.
//! - `load <smoke|baseline|stress|spike|soak> [--duration D]`: load scenarios against the
//!   example service, with wrk; `load fixed-rate --rate R[,R...]` holds a request rate with
//!   oha (installed with `cargo install` on first use); `load capacity` steps that rate up
//!   until p99 leaves its bound (with and without the layers) and `load recovery` times the
//!   return under the bound after a spike. Each writes JSON, Markdown and an HTML report
//!   with charts to `target/xtask-load/`. `load peers` measures the example cache proxy
//!   next to Varnish and nginx (installed with `apt-get` when missing) and the example
//!   service's cached list page, on cached hits of one object (for people, not CI).
//! - `fuzz [--seconds N] [TARGET...]`: the libFuzzer targets in `fuzz/targets`.
//! - `new <name> [--path DIR]`: a standalone service from the example service (its own
//!   `Cargo.toml` with versions, lints, sources, migrations, tests and README), in `DIR`
//!   (default `./<name>`).
//! - `outside [template|minimal-app]`: builds and tests, outside the workspace, a service
//!   from `new` and a minimal axum app that adds three towerkit layers (both by default).
//! - `ci`: formatting, clippy, docs, tests, the outside checks, bench build, packaging,
//!   cargo-deny: what `.ci/run` runs.

mod apt;
mod bench;
mod ci;
mod fuzz;
mod html;
mod load;
mod metadata;
mod new;
mod nginx;
mod outside;
mod promtool;
mod run;
mod services;
mod varnish;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let result = match task.as_str() {
        "test" => test(&rest),
        "run" => run::run(&rest),
        "bench" => bench::bench(&rest),
        "fuzz" => fuzz::fuzz(&rest),
        "load" => load::load(&rest),
        "new" => new::new(&rest),
        "outside" => outside::outside(&rest),
        "ci" => ci::ci(),
        _ => {
            eprintln!("usage: cargo xtask <test|run|bench|load|fuzz|new|outside|ci> [ARGS]\n");
            eprintln!("  test [CARGO TEST ARGS]  start PostgreSQL/Redis if needed, run every test");
            eprintln!(
                "  run [--instances N]     start PostgreSQL/Redis if needed, run the example service (N instances on consecutive ports)"
            );
            eprintln!(
                "  bench [FILTER] [--quick] [--save NAME] [--compare NAME] [--threshold PCT]"
            );
            eprintln!(
                "  load <smoke|baseline|stress|spike|soak> [--duration 10m]  load the example service (wrk)"
            );
            eprintln!(
                "  load fixed-rate --rate 500[,1000...] [--duration 10s] [--connections 50]  hold a request rate (oha)"
            );
            eprintln!(
                "  load capacity [--bound-ms P] [--start 250] [--step R|--factor 1.5] [--max 20000] [--duration 5s] [--layers on|off|both]  highest rate with p99 under the bound (oha)"
            );
            eprintln!(
                "  load recovery [--rate 1000] [--spike-rate 15000] [--duration 5s] [--after 20s] [--bound-ms P] [--layers on|off]  time to recover from a spike (oha)"
            );
            eprintln!(
                "  load peers [--duration 5s] [--rounds 3] [--connections 32]  the cache proxy vs Varnish and nginx on cached hits (wrk)"
            );
            eprintln!(
                "  fuzz [--seconds N] [TARGET...]  run the libFuzzer targets (default 60 s each)"
            );
            eprintln!(
                "  new <name> [--path DIR]  write a standalone service from the example (default ./<name>)"
            );
            eprintln!(
                "  outside [template|minimal-app]  build and test a generated service / a minimal app outside the workspace"
            );
            eprintln!(
                "  ci                      fmt, clippy, doc, test, outside checks, bench build, package, cargo-deny"
            );
            return ExitCode::FAILURE;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask {task}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What a task returns: `Err` carries a message for the user.
type Result<T = ()> = std::result::Result<T, String>;

/// `cargo xtask test`: every test of the workspace (unit, integration, doc), against real
/// services. Built with the release profile so the build is shared with the benches.
fn test(extra: &[String]) -> Result {
    let services = services::Services::ensure()?;
    let mut command = cargo();
    command.args(["test", "--all-features", "--release", "--locked"]);
    // `cargo xtask test -p some-crate` narrows the run; otherwise everything runs.
    if !extra
        .iter()
        .any(|arg| arg == "-p" || arg.starts_with("--package"))
    {
        command.arg("--workspace");
    }
    command.args(extra);
    services.export(&mut command);
    // The example service's metrics tests lint `/metrics` with promtool, and its Varnish
    // test runs Varnish with the xkey module: both fail without them.
    if promtool::needed_by(extra) {
        command.env("PROMTOOL", promtool::ensure()?);
        command.env("VARNISHD", varnish::ensure()?);
    }
    run_command(&mut command)
}

/// A `cargo` command from the toolchain that runs xtask, in the workspace root.
fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// The workspace root (xtask's parent directory).
fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let xtask = manifest.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    xtask.parent().map(Path::to_path_buf).unwrap_or(xtask)
}

/// The cargo target directory (honours `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// Runs a command to completion, failing on a non-zero exit.
fn run_command(command: &mut Command) -> Result {
    let status = command
        .status()
        .map_err(|e| format!("could not start {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(command)))
    }
}

/// A short description of a command for error messages.
fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args().take(3) {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}
