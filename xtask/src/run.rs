//! `cargo xtask run [--instances N]`: the example service against local (or throwaway)
//! PostgreSQL and Redis; with `--instances N`, N of them on consecutive ports sharing both,
//! so that shared cache entries, request collapsing and invalidations can be watched.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, cargo, run_command, services, target_dir};

/// The token `cargo xtask run` gives the service when `API_TOKENS` is not set: for a local
/// machine only, and printed so that `curl` can use it.
const DEV_TOKEN: &str = "dev-token-from-cargo-xtask-run";

/// The cursor key `cargo xtask run` gives the example service when `CURSOR_KEY` is unset.
/// Public, so for development only.
const DEV_CURSOR_KEY: &str = "towerkit-example-service-dev-cursor-key";

/// The most instances `--instances` starts: a laptop's worth, and a bound on the ports
/// taken.
const MAX_INSTANCES: u16 = 64;

/// How long stopped instances get to finish their in-flight requests before they are
/// killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `cargo xtask run [--instances N] [ARGS]`: ARGS go to the service.
pub(crate) fn run(args: &[String]) -> Result {
    let (instances, extra) = parse(args)?;
    let cluster = std::env::var("REDIS_CLUSTER_NODES")
        .ok()
        .filter(|nodes| !nodes.trim().is_empty());
    if cluster.is_some() && std::env::var_os("REDIS_URL").is_some() {
        return Err(
            "REDIS_URL and REDIS_CLUSTER_NODES are both set: unset one (the service takes one Redis server or one cluster)"
                .to_owned(),
        );
    }
    let services = services::Services::ensure()?;
    let token = match std::env::var("API_TOKENS") {
        Ok(_) => "one of API_TOKENS".to_owned(),
        Err(_) => DEV_TOKEN.to_owned(),
    };
    if cluster.is_some() {
        eprintln!("xtask: the cache's shared tier is the Redis Cluster of REDIS_CLUSTER_NODES");
    }
    // The variables every instance gets; `Services` exports DATABASE_URL and REDIS_URL.
    let prepare = |command: &mut Command| {
        services.export(command);
        if cluster.is_some() {
            // REDIS_CLUSTER_NODES passes through from this environment instead.
            command.env_remove("REDIS_URL");
        }
        if std::env::var_os("API_TOKENS").is_none() {
            command.env("API_TOKENS", DEV_TOKEN);
        }
        if std::env::var_os("CURSOR_KEY").is_none() {
            // A development key, so that cursors survive restarts and are shared by several
            // local instances; production sets its own secret.
            command.env("CURSOR_KEY", DEV_CURSOR_KEY);
        }
    };
    if instances == 1 {
        return run_one(&extra, &token, prepare);
    }

    let bind = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let api = consecutive("BIND_ADDR", &bind, instances)?;
    let admin = match std::env::var("ADMIN_BIND_ADDR") {
        Ok(admin) => consecutive("ADMIN_BIND_ADDR", &admin, instances)?,
        // The service's default when the ports are free, else the next free run above it.
        Err(_) => free_run(instances, &api)?,
    };
    // One public origin for all, as behind a load balancer: a page cached by one instance
    // carries the same links whichever instance serves it.
    let public_url = std::env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{}", api[0]));
    build_service()?;
    for (index, (api, admin)) in api.iter().zip(&admin).enumerate() {
        eprintln!(
            "xtask: instance {}: API on http://{api}, admin listener on http://{admin} (/metrics, /health/live, /health/ready)",
            index + 1
        );
    }
    eprintln!(
        "xtask: {instances} instances share PostgreSQL, Redis and PUBLIC_URL={public_url}; writes need `Authorization: Bearer {token}`; Ctrl-C stops them all"
    );
    let binary = target_dir().join("release").join("example-service");
    let mut running: Vec<Instance> = Vec::new();
    for (index, (api, admin)) in api.iter().zip(&admin).enumerate() {
        let mut command = Command::new(&binary);
        command.args(&extra);
        prepare(&mut command);
        command
            .env("BIND_ADDR", api.to_string())
            .env("ADMIN_BIND_ADDR", admin.to_string())
            .env("PUBLIC_URL", &public_url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match Instance::start(index + 1, &mut command) {
            Ok(instance) => running.push(instance),
            Err(message) => {
                stop(&mut running);
                return Err(message);
            }
        }
    }
    supervise(running)
}

/// `--instances N` (default 1) and the arguments for the service.
/// Builds the example service's release binary, which `run` and the load scenarios start.
pub(crate) fn build_service() -> Result {
    run_command(cargo().args([
        "build",
        "--release",
        "--locked",
        "--package",
        "example-service",
    ]))
}

fn parse(args: &[String]) -> Result<(u16, Vec<String>)> {
    let mut instances = 1;
    let mut extra = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--instances") {
            Some("") => args.next().ok_or("--instances needs a number")?,
            Some(rest) if rest.starts_with('=') => &rest[1..],
            _ => {
                extra.push(arg.clone());
                continue;
            }
        };
        instances = value
            .parse()
            .ok()
            .filter(|n| (1..=MAX_INSTANCES).contains(n))
            .ok_or(format!(
                "--instances takes a number from 1 to {MAX_INSTANCES}, got {value:?}"
            ))?;
    }
    Ok((instances, extra))
}

/// One instance, as `cargo run`: today's `cargo xtask run`.
fn run_one(extra: &[String], token: &str, prepare: impl Fn(&mut Command)) -> Result {
    let bind = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let admin = match std::env::var("ADMIN_BIND_ADDR") {
        Ok(admin) => admin,
        // The service's default, unless something else holds it on this machine.
        Err(_) if TcpListener::bind("127.0.0.1:9000").is_ok() => "127.0.0.1:9000".to_owned(),
        Err(_) => format!("127.0.0.1:{}", services::free_port()?),
    };
    eprintln!("xtask: API on http://{bind} (writes need `Authorization: Bearer {token}`)");
    eprintln!("xtask: admin listener on http://{admin} (/metrics, /health/live, /health/ready)");
    let mut command = cargo();
    command.args([
        "run",
        "--release",
        "--locked",
        "--package",
        "example-service",
        "--",
    ]);
    command.args(extra);
    prepare(&mut command);
    command.env("ADMIN_BIND_ADDR", &admin);
    run_command(&mut command)
}

/// `count` addresses from `first` (`ip:port`) on, each port one more than the last, all
/// free now.
fn consecutive(variable: &str, first: &str, count: u16) -> Result<Vec<SocketAddr>> {
    let first: SocketAddr = first.parse().map_err(|_| {
        format!("--instances needs {variable} as ip:port (the first of consecutive ports), got {first:?}")
    })?;
    let last = first.port().checked_add(count - 1).ok_or(format!(
        "{variable} {first}: {count} consecutive ports do not fit below 65536"
    ))?;
    (first.port()..=last)
        .map(|port| {
            let address = SocketAddr::new(first.ip(), port);
            match TcpListener::bind(address) {
                Ok(_) => Ok(address),
                Err(e) => Err(format!(
                    "{address} is not free ({e}): stop what holds it, or set {variable} to the first of {count} free consecutive ports"
                )),
            }
        })
        .collect()
}

/// The first `count` free consecutive ports on 127.0.0.1 from 9000 (the service's admin
/// default) on, none of them in `taken`. Searched below the ephemeral range (32768 and up
/// on Linux): there, the local ports of closed connections linger in `TIME_WAIT` and a
/// run of free consecutive ports is rare on a busy machine.
fn free_run(count: u16, taken: &[SocketAddr]) -> Result<Vec<SocketAddr>> {
    (9000..20_000)
        .find_map(|first| {
            let run = consecutive("ADMIN_BIND_ADDR", &format!("127.0.0.1:{first}"), count).ok()?;
            let clear = !run.iter().any(|a| taken.iter().any(|t| t.port() == a.port()));
            clear.then_some(run)
        })
        .ok_or(format!(
            "no {count} free consecutive ports from 9000 on for the admin listeners: set ADMIN_BIND_ADDR"
        ))
}

/// A running instance, its output copied line by line with a `[N]` prefix.
struct Instance {
    number: usize,
    child: Child,
}

impl Instance {
    fn start(number: usize, command: &mut Command) -> Result<Self> {
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", command.get_program().display()))?;
        if let Some(stdout) = child.stdout.take() {
            prefix_lines(number, stdout, false);
        }
        if let Some(stderr) = child.stderr.take() {
            prefix_lines(number, stderr, true);
        }
        Ok(Instance { number, child })
    }
}

/// Copies `from` to this process's stdout (or stderr), each line prefixed with `[number]`,
/// on a thread of its own that ends with the stream.
fn prefix_lines(number: usize, from: impl Read + Send + 'static, to_stderr: bool) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if !line.ends_with(b"\n") {
                line.push(b'\n');
            }
            // One write per line, under the stream's lock: lines of instances never mix.
            let mut text = format!("[{number}] ").into_bytes();
            text.extend_from_slice(&line);
            let _ = if to_stderr {
                std::io::stderr().lock().write_all(&text)
            } else {
                std::io::stdout().lock().write_all(&text)
            };
        }
    });
}

/// Waits until one instance exits, then stops the others. Ctrl-C reaches every instance
/// directly (they share the terminal's process group), and each shuts down gracefully.
fn supervise(mut running: Vec<Instance>) -> Result {
    let (number, status) = loop {
        if let Some(exited) = running.iter_mut().find_map(|instance| {
            let status = instance.child.try_wait().ok().flatten()?;
            Some((instance.number, status))
        }) {
            break exited;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    running.retain(|instance| instance.number != number);
    if !running.is_empty() {
        eprintln!("xtask: instance {number} exited ({status}); stopping the others");
    }
    stop(&mut running);
    outcome(number, status)
}

fn outcome(number: usize, status: ExitStatus) -> Result {
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "instance {number} of the example service failed ({status})"
        ))
    }
}

/// Asks every instance to shut down (SIGTERM: in-flight requests finish), and kills those
/// still running after [`STOP_GRACE`].
fn stop(running: &mut Vec<Instance>) {
    for instance in running.iter_mut() {
        terminate(&mut instance.child);
    }
    let deadline = Instant::now() + STOP_GRACE;
    for instance in running.iter_mut() {
        while instance.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = instance.child.kill();
        let _ = instance.child.wait();
    }
    running.clear();
}

#[cfg(unix)]
fn terminate(child: &mut Child) {
    // std has no way to send SIGTERM; `kill` is everywhere Unix is.
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !sent {
        let _ = child.kill();
    }
}

#[cfg(not(unix))]
fn terminate(child: &mut Child) {
    let _ = child.kill();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn one_instance_by_default_and_other_arguments_pass_through() {
        assert_eq!(parse(&[]).unwrap(), (1, vec![]));
        assert_eq!(
            parse(&args(&["--instances", "3", "--x"])).unwrap(),
            (3, args(&["--x"]))
        );
        assert_eq!(parse(&args(&["--instances=4"])).unwrap().0, 4);
        for bad in [
            &["--instances"][..],
            &["--instances", "0"],
            &["--instances", "65"],
            &["--instances", "two"],
            &["--instances="],
        ] {
            let error = parse(&args(bad)).unwrap_err();
            assert!(error.starts_with("--instances"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn consecutive_ports_are_checked_and_named() {
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let held = holder.local_addr().unwrap();
        // A run starting on a held port: refused, naming the port and the variable.
        let error = consecutive("BIND_ADDR", &held.to_string(), 2).unwrap_err();
        assert!(
            error.contains(&held.to_string()) && error.contains("BIND_ADDR"),
            "{error}"
        );
        assert!(consecutive("BIND_ADDR", "localhost:3000", 2).is_err());
        assert!(consecutive("BIND_ADDR", "127.0.0.1:65535", 2).is_err());
        let run = free_run(3, &[]).unwrap();
        assert_eq!(run.len(), 3);
        assert_eq!(run[2].port(), run[0].port() + 2);
        // Ports already given to the API listeners are skipped.
        let after = free_run(3, &run).unwrap();
        assert!(after[0].port() > run[2].port(), "{run:?} {after:?}");
    }
}
