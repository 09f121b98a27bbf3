//! PostgreSQL and Redis for tests and the example service: use the configured ones when they
//! answer, otherwise start throwaway servers (data under the system temporary directory) on free ports.

use std::net::{TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::Duration;

use towerkit_test_support::servers::{Postgres, Redis};

use crate::Result;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The services a task runs against; throwaway ones (towerkit-test-support's `servers`) are
/// stopped and removed when this is dropped.
#[derive(Debug)]
pub(crate) struct Services {
    database_url: String,
    redis_url: String,
    postgres: Option<Postgres>,
    redis: Option<Redis>,
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
            let postgres = Postgres::start().map_err(|e| {
                format!("PostgreSQL is not reachable and a throwaway one did not start: {e}; or set DATABASE_URL to a running server")
            })?;
            services.database_url = postgres.url();
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
            let redis = Redis::start().map_err(|e| {
                format!("Redis is not reachable and a throwaway one did not start: {e}; or set REDIS_URL to a running server")
            })?;
            services.redis_url = redis.url();
            eprintln!("xtask: throwaway Redis at {}", services.redis_url);
            services.redis = Some(redis);
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
    towerkit_test_support::servers::free_port().map_err(|e| format!("no free port: {e}"))
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
