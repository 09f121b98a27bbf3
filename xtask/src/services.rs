//! PostgreSQL and Redis for tests and the example service: use the configured ones when they
//! answer, otherwise start throwaway servers (data under the system temporary directory) on free ports.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The services a task runs against; throwaway ones are stopped when this is dropped.
#[derive(Debug)]
pub(crate) struct Services {
    database_url: String,
    redis_url: String,
    postgres: Option<ThrowawayPostgres>,
    redis: Option<(Child, PathBuf)>,
}

impl Services {
    /// Checks `DATABASE_URL` and `REDIS_URL` (or the local defaults) and starts what is missing.
    pub(crate) fn ensure() -> Result<Self> {
        let database_url =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
        let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
        let mut services = Services {
            database_url,
            redis_url,
            postgres: None,
            redis: None,
        };

        if reachable(&services.database_url, 5432) {
            eprintln!("xtask: PostgreSQL at {}", redact(&services.database_url));
        } else {
            eprintln!(
                "xtask: PostgreSQL at {} does not answer; starting a throwaway one",
                redact(&services.database_url)
            );
            let postgres = ThrowawayPostgres::start()?;
            services.database_url =
                format!("postgres://postgres@127.0.0.1:{}/postgres", postgres.port);
            eprintln!("xtask: throwaway PostgreSQL at {}", services.database_url);
            services.postgres = Some(postgres);
        }

        if reachable(&services.redis_url, 6379) {
            eprintln!("xtask: Redis at {}", redact(&services.redis_url));
        } else {
            eprintln!(
                "xtask: Redis at {} does not answer; starting a throwaway one",
                redact(&services.redis_url)
            );
            let (child, port, dir) = start_redis()?;
            services.redis_url = format!("redis://127.0.0.1:{port}");
            eprintln!("xtask: throwaway Redis at {}", services.redis_url);
            services.redis = Some((child, dir));
        }
        Ok(services)
    }

    /// Passes the service URLs to a command's environment.
    pub(crate) fn export(&self, command: &mut Command) {
        command
            .env("DATABASE_URL", &self.database_url)
            .env("REDIS_URL", &self.redis_url);
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        if let Some((mut redis, dir)) = self.redis.take() {
            let _ = redis.kill();
            let _ = redis.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
        // ThrowawayPostgres stops itself on drop.
        self.postgres.take();
    }
}

/// Whether something accepts TCP connections at the URL's host and port.
fn reachable(url: &str, default_port: u16) -> bool {
    let Some((host, port)) = host_port(url, default_port) else {
        return false;
    };
    let Ok(addresses) = (host.as_str(), port).to_socket_addrs() else {
        return false;
    };
    addresses
        .into_iter()
        .any(|address| TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok())
}

/// The host and port of a `scheme://[user[:password]@]host[:port][/path]` URL.
fn host_port(url: &str, default_port: u16) -> Option<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host_port.is_empty() {
        return Some(("127.0.0.1".to_owned(), default_port));
    }
    if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default_port);
        return Some((host.to_owned(), port));
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((host_port.to_owned(), default_port)),
    }
}

/// The URL without its password.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

/// A port nobody listens on right now.
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Where throwaway servers keep their data: under the system temporary directory, which
/// every user (PostgreSQL's included) can traverse, unlike a target directory in a home.
fn services_dir() -> PathBuf {
    std::env::temp_dir().join("towerkit-xtask-services")
}

/// Finds a PostgreSQL server binary on PATH or in Debian's versioned directories.
fn find_postgres_bin(name: &str) -> Option<PathBuf> {
    if let Some(path) = which(name) {
        return Some(path);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|v| v.join("bin").join(name))
        .find(|p| p.is_file())
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A PostgreSQL cluster in `$TMPDIR/towerkit-xtask-services/pg-PORT`, stopped and removed on drop.
#[derive(Debug)]
struct ThrowawayPostgres {
    port: u16,
    dir: PathBuf,
    pg_ctl: PathBuf,
    as_postgres: bool,
}

impl ThrowawayPostgres {
    fn start() -> Result<Self> {
        let missing = "PostgreSQL is not reachable and its server binaries (initdb, pg_ctl) are not installed. \
                       Install them (Debian/Ubuntu: `apt-get install postgresql`) or set DATABASE_URL to a running server";
        let initdb = find_postgres_bin("initdb").ok_or(missing)?;
        let pg_ctl = find_postgres_bin("pg_ctl").ok_or(missing)?;
        let port = free_port()?;
        let dir = services_dir().join(format!("pg-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // initdb and postgres refuse to run as root: hand the directory to the postgres user.
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
            if !status.is_ok_and(|s| s.success()) {
                return Err(format!(
                    "cannot chown {} to the postgres user",
                    dir.display()
                ));
            }
        }
        let data = dir.join("data");
        let postgres = ThrowawayPostgres {
            port,
            dir: dir.clone(),
            pg_ctl,
            as_postgres,
        };
        run_quiet(postgres.command(&initdb).arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]))?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.display()
        );
        run_quiet(
            postgres
                .command(&postgres.pg_ctl)
                .arg("-D")
                .arg(&data)
                .args(["-o", &options, "-l"])
                .arg(dir.join("log"))
                .args(["-w", "start"]),
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reachable(&format!("postgres://127.0.0.1:{port}"), port) {
            if Instant::now() > deadline {
                return Err(format!(
                    "throwaway PostgreSQL did not start; see {}",
                    dir.join("log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(postgres)
    }

    fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self
            .command(&self.pg_ctl)
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `redis-server` on a free port, in the foreground of a child process.
fn start_redis() -> Result<(Child, u16, PathBuf)> {
    let server = which("redis-server").ok_or(
        "Redis is not reachable and redis-server is not installed. \
         Install it (Debian/Ubuntu: `apt-get install redis-server`) or set REDIS_URL to a running server",
    )?;
    let port = free_port()?;
    let dir = services_dir().join(format!("redis-{port}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let child = Command::new(server)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start redis-server: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reachable(&format!("redis://127.0.0.1:{port}"), port) {
        if Instant::now() > deadline {
            return Err("throwaway redis-server did not start".to_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, port, dir))
}

fn run_quiet(command: &mut Command) -> Result {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_port_from_urls() {
        assert_eq!(
            host_port("postgres://u:p@db.local:6000/x", 5432),
            Some(("db.local".into(), 6000))
        );
        assert_eq!(
            host_port("postgres://127.0.0.1/x", 5432),
            Some(("127.0.0.1".into(), 5432))
        );
        assert_eq!(
            host_port("redis://[::1]:7000", 6379),
            Some(("::1".into(), 7000))
        );
        assert_eq!(
            host_port("redis://", 6379),
            Some(("127.0.0.1".into(), 6379))
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://user:secret@host/db"),
            "postgres://user@host/db"
        );
        assert_eq!(redact("redis://host:1"), "redis://host:1");
    }
}
