//! Configuration from the environment, with defaults that work against the local services.

use std::fmt;
use std::time::Duration;

use crate::auth::ApiTokens;
use crate::secret::redact_url;

/// Everything the service reads from its environment. `Debug` shows the connection URLs
/// without their passwords and the API tokens as a count.
#[derive(Clone)]
pub struct Config {
    /// `BIND_ADDR`: where to listen. Default `127.0.0.1:3000`.
    pub bind_addr: String,
    /// `ADMIN_BIND_ADDR`: where the operations listener (`/metrics`, health) listens.
    /// Default `127.0.0.1:9000`, loopback: expose it to the scraper, not to the internet.
    pub admin_bind_addr: String,
    /// `API_TOKENS`: comma-separated bearer tokens that may write (`POST`/`PUT`/`DELETE`),
    /// each at least 16 characters; list two while rotating. Unset: every write gets a 401.
    pub api_tokens: ApiTokens,
    /// `PUBLIC_URL`: the origin clients use, for absolute `Link` URLs. Default
    /// `http://{BIND_ADDR}`. Links never come from the request's `Host` header, which a
    /// client controls and the cache does not key on.
    pub public_url: String,
    /// `CURSOR_KEY`: the key pagination cursors are signed with, at least 32 bytes, the same
    /// on every instance (a cursor issued by one instance, or read from a page cached in
    /// Redis, must verify on all of them). Unset: this service's page-numbered routes issue
    /// no cursors and work without it, but a route paged by cursor (`Style::Cursors`) or
    /// issuing keyset cursors needs it; `cargo xtask run` passes a development key.
    pub cursor_key: Option<String>,
    /// `DATABASE_URL`. Default `postgres://postgres@127.0.0.1:5432/postgres`.
    pub database_url: String,
    /// `REDIS_URL`: when set, a tiered cache (memory in front of Redis); otherwise memory only.
    pub redis_url: Option<String>,
    /// `REDIS_CA_CERT`: a PEM file with the root certificate of a private CA that signed the
    /// certificate of a `rediss://` `REDIS_URL` (else the system's roots are trusted).
    pub redis_ca_cert: Option<std::path::PathBuf>,
    /// `CACHE_REDIS_PREFIX`: the prefix of the cache's Redis keys and channel. Default
    /// `example-service:`.
    pub redis_prefix: Option<String>,
    /// `LAYERS`: `all` (default) or `none`, the same routes without any towerkit layer, for
    /// side-by-side measurement.
    pub layers: Layers,
    /// `CACHE_TTL_SECS`: how long responses without their own freshness are cached. Default 60.
    pub cache_ttl: Duration,
    /// `CACHE_CAPACITY_MB`: the in-memory cache's size. Default 64.
    pub cache_capacity_bytes: u64,
    /// `SLOW_WARN_MS` / `SLOW_ERROR_MS`: slow request and query thresholds. Default 500 / 1000.
    pub slow_warn: Duration,
    /// See `slow_warn`.
    pub slow_error: Duration,
    /// `REQUEST_TIMEOUT_SECS`: a request taking longer gets a 503. Default 10.
    pub request_timeout: Duration,
}

/// Which layers the service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layers {
    /// Every towerkit layer.
    All,
    /// None of them: the bare routes.
    None,
}

/// A variable that is set but cannot be used.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let number = |name: &str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(text) => text.trim().parse().map_err(|_| {
                    ConfigError(format!("{name} must be a whole number, got {text:?}"))
                }),
            }
        };
        let layers = match lookup("LAYERS").as_deref().map(str::trim) {
            None | Some("" | "all") => Layers::All,
            Some("none") => Layers::None,
            Some(other) => {
                return Err(ConfigError(format!(
                    "LAYERS must be `all` or `none`, got {other:?}"
                )));
            }
        };
        let slow_warn = Duration::from_millis(number("SLOW_WARN_MS", 500)?);
        let slow_error = Duration::from_millis(number("SLOW_ERROR_MS", 1000)?);
        if slow_warn > slow_error {
            return Err(ConfigError(
                "SLOW_WARN_MS must not exceed SLOW_ERROR_MS".to_owned(),
            ));
        }
        let bind_addr = lookup("BIND_ADDR").unwrap_or_else(|| "127.0.0.1:3000".to_owned());
        let api_tokens = ApiTokens::parse(lookup("API_TOKENS").as_deref().unwrap_or(""))
            .map_err(|e| ConfigError(e.to_string()))?;
        Ok(Config {
            admin_bind_addr: lookup("ADMIN_BIND_ADDR")
                .unwrap_or_else(|| "127.0.0.1:9000".to_owned()),
            api_tokens,
            public_url: lookup("PUBLIC_URL").unwrap_or_else(|| format!("http://{bind_addr}")),
            bind_addr,
            cursor_key: lookup("CURSOR_KEY").filter(|key| !key.is_empty()),
            database_url: lookup("DATABASE_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            redis_url: lookup("REDIS_URL").filter(|url| !url.trim().is_empty()),
            redis_ca_cert: lookup("REDIS_CA_CERT")
                .filter(|path| !path.trim().is_empty())
                .map(std::path::PathBuf::from),
            redis_prefix: lookup("CACHE_REDIS_PREFIX"),
            layers,
            cache_ttl: Duration::from_secs(number("CACHE_TTL_SECS", 60)?),
            cache_capacity_bytes: number("CACHE_CAPACITY_MB", 64)? * 1024 * 1024,
            slow_warn,
            slow_error,
            request_timeout: Duration::from_secs(number("REQUEST_TIMEOUT_SECS", 10)?.max(1)),
        })
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind_addr", &self.bind_addr)
            .field("admin_bind_addr", &self.admin_bind_addr)
            .field("api_tokens", &self.api_tokens)
            .field("public_url", &self.public_url)
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_ca_cert", &self.redis_ca_cert)
            .field("redis_prefix", &self.redis_prefix)
            .field("layers", &self.layers)
            .field("cache_ttl", &self.cache_ttl)
            .field("cache_capacity_bytes", &self.cache_capacity_bytes)
            .field("slow_warn", &self.slow_warn)
            .field("slow_error", &self.slow_error)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_work_on_a_local_machine() {
        let config = config(&[]).unwrap();
        assert_eq!(config.bind_addr, "127.0.0.1:3000");
        assert_eq!(config.layers, Layers::All);
        assert_eq!(config.redis_url, None);
        assert_eq!(config.cache_ttl, Duration::from_secs(60));
        assert_eq!(config.admin_bind_addr, "127.0.0.1:9000");
        assert!(config.api_tokens.is_empty(), "no token by default");
    }

    #[test]
    fn api_tokens_are_a_list_and_short_ones_are_refused() {
        let config = config(&[("API_TOKENS", "new-token-0123456789, old-token-0123456789")]);
        assert_eq!(config.unwrap().api_tokens.len(), 2);
        let error = config_error(&[("API_TOKENS", "new-token-0123456789,hunter2")]);
        assert!(error.contains("API_TOKENS"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    fn config_error(pairs: &[(&str, &str)]) -> String {
        config(pairs).unwrap_err().to_string()
    }

    #[test]
    fn bad_values_are_named() {
        let error = config(&[("CACHE_TTL_SECS", "soon")]).unwrap_err();
        assert!(error.to_string().contains("CACHE_TTL_SECS"));
        assert!(config(&[("LAYERS", "some")]).is_err());
        assert!(config(&[("SLOW_WARN_MS", "2000"), ("SLOW_ERROR_MS", "1000")]).is_err());
    }

    #[test]
    fn the_cursor_key_comes_from_the_environment() {
        let key = "k".repeat(32);
        assert_eq!(
            config(&[("CURSOR_KEY", &key)]).unwrap().cursor_key,
            Some(key)
        );
        assert_eq!(config(&[("CURSOR_KEY", "")]).unwrap().cursor_key, None);
    }

    #[test]
    fn layers_none_is_recognised() {
        assert_eq!(config(&[("LAYERS", "none")]).unwrap().layers, Layers::None);
    }
}
