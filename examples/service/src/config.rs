//! Configuration from the environment, with defaults that work against the local services.

use std::fmt;
use std::time::Duration;

use axum::http::HeaderName;
use towerkit::cache::{CdnHeadersLayer, VarnishPurger};

use crate::auth::ApiTokens;
use crate::secret::redact_url;
use crate::telemetry::TelemetryConfig;

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
    /// `REQUIRE_PRECONDITIONS`: `on` answers `PUT` and `DELETE /api/products/{id}` without
    /// `If-Match` (or `If-Unmodified-Since`) with `428 Precondition Required`, so no client
    /// can overwrite a version it has not read. Default `off`: such a write replaces
    /// whatever is there, as before validators existed; a write that sends `If-Match` is
    /// checked either way (`412` when stale).
    pub require_preconditions: bool,
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
    /// Not together with `REDIS_CLUSTER_NODES`.
    pub redis_url: Option<String>,
    /// `REDIS_CLUSTER_NODES`: comma-separated seed nodes of a Redis Cluster, each `host:port`
    /// (plain TCP) or a full `redis://` / `rediss://` URL (TLS, an ACL user and password);
    /// when set, the tiered cache's shared tier is that cluster. Not together with
    /// `REDIS_URL`. Empty when unset.
    pub redis_cluster_nodes: Vec<String>,
    /// `REDIS_CA_CERT`: a PEM file with the root certificate of a private CA that signed the
    /// certificate of a `rediss://` `REDIS_URL`, or of the `rediss://` cluster nodes (else
    /// the system's roots are trusted).
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
    /// `CACHE_WARM`: the paths (with their query) warmed at start-up, comma-separated, each
    /// starting with `/`; `off` (or empty) for none. Default [`DEFAULT_CACHE_WARM`]: the
    /// first product page and the categories.
    pub cache_warm: Vec<String>,
    /// `CACHE_REFRESH_AHEAD`: the last fraction of a cached response's lifetime in which a
    /// hit refreshes it in the background (`CacheLayerBuilder::refresh_ahead`), strictly
    /// between 0 and 1; `off` (or `0`) to turn it off. Default `0.1`: a hot list page is
    /// refreshed in the last 6 s of its 60 s and never expires under load.
    pub cache_refresh_ahead: Option<f64>,
    /// `CDN_CACHE_CONTROL`: the `CDN-Cache-Control` (RFC 9213) the cacheable API responses
    /// carry for a CDN in front (`CdnHeadersLayer`), a Structured Field Dictionary such as
    /// `max-age=600`; `off` (or empty) for none. Default `max-age=60`. The service's own
    /// cache ignores it.
    pub cdn_cache_control: Option<String>,
    /// `CDN_TAG_HEADERS`: the response fields a response's cache tags go out in, for a CDN
    /// to purge by (`surrogate-key`, `xkey`, comma-separated); `off` (or empty) for none.
    /// Default `surrogate-key`.
    pub cdn_tag_headers: Vec<HeaderName>,
    /// `VARNISH_PURGE_NODES`: comma-separated base URLs of the Varnish nodes in front
    /// (`http://10.0.0.5:6081`), purged by surrogate key (xkey) whenever a write invalidates
    /// the cache; their VCL must let this service purge (see `varnish/default.vcl`). Empty
    /// when unset: no purge.
    pub varnish_purge_nodes: Vec<String>,
    /// `SLOW_WARN_MS` / `SLOW_ERROR_MS`: slow request and query thresholds. Default 500 / 1000.
    pub slow_warn: Duration,
    /// See `slow_warn`.
    pub slow_error: Duration,
    /// `REQUEST_TIMEOUT_SECS`: a request taking longer gets a 503. Default 10.
    pub request_timeout: Duration,
    /// `QUERY_STATS=on`: `GET /ops/queries` on the admin listener (the query statistics as
    /// a top-N table). Default off.
    pub query_stats: bool,
    /// `EXPLAIN_SLOW_QUERIES=on`: the plan of a slow read is captured (`EXPLAIN`, in the
    /// background, at most once a minute per query), logged and shown by `/ops/queries`.
    /// Default off.
    pub explain_slow_queries: bool,
    /// Traces: `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`,
    /// `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_SCHEDULE_DELAY` and
    /// `TRACE_QUERY_TEXT` (see [`TelemetryConfig`]).
    pub telemetry: TelemetryConfig,
}

/// The paths warmed at start-up unless `CACHE_WARM` says otherwise.
pub const DEFAULT_CACHE_WARM: &str = "/api/products,/api/categories";

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

impl ConfigError {
    /// An error with this message.
    pub(crate) fn new(message: String) -> Self {
        ConfigError(message)
    }
}

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
        let cache_warm = warm_paths(
            lookup("CACHE_WARM")
                .as_deref()
                .unwrap_or(DEFAULT_CACHE_WARM),
        )?;
        let cache_refresh_ahead = match lookup("CACHE_REFRESH_AHEAD").as_deref().map(str::trim) {
            None => Some(0.1),
            Some("" | "off" | "0") => None,
            Some(text) => match text.parse::<f64>() {
                Ok(fraction) if fraction > 0.0 && fraction < 1.0 => Some(fraction),
                _ => {
                    return Err(ConfigError(format!(
                        "CACHE_REFRESH_AHEAD must be a fraction strictly between 0 and 1 \
                         (0.1: the last 10 % of a lifetime) or `off`, got {text:?}"
                    )));
                }
            },
        };
        let cdn = cdn_settings(&lookup)?;
        let bind_addr = lookup("BIND_ADDR").unwrap_or_else(|| "127.0.0.1:3000".to_owned());
        let api_tokens = ApiTokens::parse(lookup("API_TOKENS").as_deref().unwrap_or(""))
            .map_err(|e| ConfigError(e.to_string()))?;
        let require_preconditions = match lookup("REQUIRE_PRECONDITIONS").as_deref().map(str::trim)
        {
            None | Some("" | "off") => false,
            Some("on") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "REQUIRE_PRECONDITIONS must be `on` or `off`, got {other:?}"
                )));
            }
        };
        let redis_url = lookup("REDIS_URL").filter(|url| !url.trim().is_empty());
        let redis_cluster_nodes =
            cluster_nodes(lookup("REDIS_CLUSTER_NODES").as_deref().unwrap_or(""))?;
        if redis_url.is_some() && !redis_cluster_nodes.is_empty() {
            return Err(ConfigError(
                "REDIS_URL and REDIS_CLUSTER_NODES are both set: set REDIS_URL for one Redis \
                 server, or REDIS_CLUSTER_NODES for a Redis Cluster, not both"
                    .to_owned(),
            ));
        }
        let redis_ca_cert = lookup("REDIS_CA_CERT")
            .filter(|path| !path.trim().is_empty())
            .map(std::path::PathBuf::from);
        if redis_ca_cert.is_some()
            && redis_cluster_nodes
                .first()
                .is_some_and(|node| node.starts_with("redis://"))
        {
            return Err(ConfigError(
                "REDIS_CA_CERT is set but the REDIS_CLUSTER_NODES are plain TCP: write each \
                 node as a rediss://host:port URL to use TLS"
                    .to_owned(),
            ));
        }
        let switch = |name: &str| match lookup(name).as_deref().map(str::trim) {
            None | Some("" | "off") => Ok(false),
            Some("on") => Ok(true),
            Some(other) => Err(ConfigError(format!(
                "{name} must be `on` or `off`, got {other:?}"
            ))),
        };
        let query_stats = switch("QUERY_STATS")?;
        let explain_slow_queries = switch("EXPLAIN_SLOW_QUERIES")?;
        Ok(Config {
            query_stats,
            explain_slow_queries,
            admin_bind_addr: lookup("ADMIN_BIND_ADDR")
                .unwrap_or_else(|| "127.0.0.1:9000".to_owned()),
            api_tokens,
            require_preconditions,
            public_url: lookup("PUBLIC_URL").unwrap_or_else(|| format!("http://{bind_addr}")),
            bind_addr,
            cursor_key: lookup("CURSOR_KEY").filter(|key| !key.is_empty()),
            database_url: lookup("DATABASE_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            redis_url,
            redis_cluster_nodes,
            redis_ca_cert,
            redis_prefix: lookup("CACHE_REDIS_PREFIX"),
            layers,
            cache_ttl: Duration::from_secs(number("CACHE_TTL_SECS", 60)?),
            cache_capacity_bytes: number("CACHE_CAPACITY_MB", 64)? * 1024 * 1024,
            cache_warm,
            cache_refresh_ahead,
            cdn_cache_control: cdn.cache_control,
            cdn_tag_headers: cdn.tag_headers,
            varnish_purge_nodes: cdn.purge_nodes,
            slow_warn,
            slow_error,
            request_timeout: Duration::from_secs(number("REQUEST_TIMEOUT_SECS", 10)?.max(1)),
            telemetry: TelemetryConfig::from_lookup(&lookup)?,
        })
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind_addr", &self.bind_addr)
            .field("admin_bind_addr", &self.admin_bind_addr)
            .field("api_tokens", &self.api_tokens)
            .field("require_preconditions", &self.require_preconditions)
            .field("public_url", &self.public_url)
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field(
                "redis_cluster_nodes",
                &self
                    .redis_cluster_nodes
                    .iter()
                    .map(|node| redact_url(node))
                    .collect::<Vec<_>>(),
            )
            .field("redis_ca_cert", &self.redis_ca_cert)
            .field("redis_prefix", &self.redis_prefix)
            .field("layers", &self.layers)
            .field("cache_ttl", &self.cache_ttl)
            .field("cache_capacity_bytes", &self.cache_capacity_bytes)
            .field("cache_warm", &self.cache_warm)
            .field("cache_refresh_ahead", &self.cache_refresh_ahead)
            .field("cdn_cache_control", &self.cdn_cache_control)
            .field("cdn_tag_headers", &self.cdn_tag_headers)
            .field("varnish_purge_nodes", &self.varnish_purge_nodes)
            .field("slow_warn", &self.slow_warn)
            .field("slow_error", &self.slow_error)
            .field("request_timeout", &self.request_timeout)
            .field("query_stats", &self.query_stats)
            .field("explain_slow_queries", &self.explain_slow_queries)
            .field("telemetry", &self.telemetry)
            .finish_non_exhaustive()
    }
}

/// What the service tells a CDN in front, and which Varnish nodes it purges.
struct CdnSettings {
    cache_control: Option<String>,
    tag_headers: Vec<HeaderName>,
    purge_nodes: Vec<String>,
}

/// `CDN_CACHE_CONTROL`, `CDN_TAG_HEADERS` and `VARNISH_PURGE_NODES`, each checked as the
/// layers will use it.
fn cdn_settings(lookup: impl Fn(&str) -> Option<String>) -> Result<CdnSettings, ConfigError> {
    let off = |value: &str| matches!(value.trim(), "" | "off");
    let cache_control = match lookup("CDN_CACHE_CONTROL") {
        None => Some("max-age=60".to_owned()),
        Some(value) if off(&value) => None,
        Some(value) => {
            let value = value.trim().to_owned();
            CdnHeadersLayer::builder()
                .cdn_cache_control(&value)
                .build()
                .map_err(|_| {
                    ConfigError(format!(
                        "CDN_CACHE_CONTROL must be a CDN-Cache-Control value such as                          `max-age=600` (a Structured Field Dictionary), or `off`, got {value:?}"
                    ))
                })?;
            Some(value)
        }
    };
    let tag_headers = lookup("CDN_TAG_HEADERS").unwrap_or_else(|| "surrogate-key".to_owned());
    let tag_headers = if off(&tag_headers) {
        Vec::new()
    } else {
        tag_headers
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                HeaderName::try_from(name).map_err(|_| {
                    ConfigError(format!(
                        "CDN_TAG_HEADERS must list header names (surrogate-key, xkey), got {name:?}"
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let purge_nodes: Vec<String> = lookup("VARNISH_PURGE_NODES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect();
    if !purge_nodes.is_empty() {
        VarnishPurger::builder(purge_nodes.iter().cloned())
            .build()
            .map_err(|e| ConfigError(format!("VARNISH_PURGE_NODES: {e}")))?;
    }
    Ok(CdnSettings {
        cache_control,
        tag_headers,
        purge_nodes,
    })
}

/// The paths of `CACHE_WARM`: `off` or nothing for none; each entry a path (and query)
/// starting with `/` that parses as a request target.
fn warm_paths(list: &str) -> Result<Vec<String>, ConfigError> {
    if list.trim() == "off" {
        return Ok(Vec::new());
    }
    let mut paths = Vec::new();
    for entry in list
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        if !entry.starts_with('/') || entry.parse::<axum::http::Uri>().is_err() {
            return Err(ConfigError(format!(
                "CACHE_WARM must list paths starting with `/` (or be `off`), got {entry:?}"
            )));
        }
        paths.push(entry.to_owned());
    }
    Ok(paths)
}

/// The seed nodes of `REDIS_CLUSTER_NODES` as URLs: `host:port` becomes `redis://host:port`,
/// a `redis://` or `rediss://` URL stays as it is. Empty entries (a trailing comma) are
/// skipped; an empty list is no cluster. Errors name the variable and show an entry only
/// without its password.
fn cluster_nodes(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut nodes = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let node = match entry.split_once("://") {
            Some(("redis" | "rediss", "")) => {
                return Err(ConfigError(format!(
                    "REDIS_CLUSTER_NODES: {entry:?} has no host"
                )));
            }
            Some(("redis" | "rediss", _)) => entry.to_owned(),
            Some((scheme, _)) => {
                return Err(ConfigError(format!(
                    "REDIS_CLUSTER_NODES: {} is not a redis:// or rediss:// URL (scheme {scheme:?})",
                    redact_url(entry)
                )));
            }
            None if entry.contains('@') || entry.contains('/') => {
                // Userinfo or a path needs a scheme; the entry may hold a password, so it
                // is not shown.
                return Err(ConfigError(
                    "REDIS_CLUSTER_NODES: an entry with a user, password or path must be a \
                     full redis:// or rediss:// URL"
                        .to_owned(),
                ));
            }
            None => {
                check_host_port(entry).map_err(|why| {
                    ConfigError(format!(
                        "REDIS_CLUSTER_NODES: {entry:?} is not host:port ({why})"
                    ))
                })?;
                format!("redis://{entry}")
            }
        };
        nodes.push(node);
    }
    // The client takes TLS from the first node and refuses a mix; say so here, by name.
    let tls = |node: &String| node.starts_with("rediss://");
    if nodes.iter().any(tls) && !nodes.iter().all(tls) {
        return Err(ConfigError(
            "REDIS_CLUSTER_NODES mixes rediss:// (TLS) and plain nodes: a cluster is reached \
             one way, write every node as rediss://host:port or none"
                .to_owned(),
        ));
    }
    Ok(nodes)
}

/// Checks a `host:port` (`[v6]:port` for an IPv6 address) without a scheme.
fn check_host_port(entry: &str) -> Result<(), &'static str> {
    let (host, port) = match entry.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("an unclosed `[`")?;
            let port = after.strip_prefix(':').ok_or("no port")?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| "not an IPv6 address between `[` and `]`")?;
            (host, port)
        }
        None => entry.rsplit_once(':').ok_or("no port")?,
    };
    if host.is_empty() || (host.contains(':') && !entry.starts_with('[')) {
        return Err("a host, or an IPv6 address in brackets, comes before the port");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err("the port must be a number from 1 to 65535"),
        Ok(_) => Ok(()),
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
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.cache_warm, ["/api/products", "/api/categories"]);
        assert_eq!(defaults.cache_refresh_ahead, Some(0.1));
        let custom = config(&[
            ("CACHE_WARM", "/api/products?page=1, /api/products?page=2,"),
            ("CACHE_REFRESH_AHEAD", "0.25"),
        ])
        .unwrap();
        assert_eq!(
            custom.cache_warm,
            ["/api/products?page=1", "/api/products?page=2"]
        );
        assert_eq!(custom.cache_refresh_ahead, Some(0.25));
        let off = config(&[("CACHE_WARM", "off"), ("CACHE_REFRESH_AHEAD", "off")]).unwrap();
        assert!(off.cache_warm.is_empty());
        assert_eq!(off.cache_refresh_ahead, None);
        for (name, value) in [
            ("CACHE_WARM", "api/products"),
            ("CACHE_WARM", "/a b"),
            ("CACHE_REFRESH_AHEAD", "1"),
            ("CACHE_REFRESH_AHEAD", "-0.1"),
            ("CACHE_REFRESH_AHEAD", "NaN"),
            ("CACHE_REFRESH_AHEAD", "lots"),
        ] {
            let error = config(&[(name, value)]).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
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
    fn cluster_nodes_are_host_ports_or_urls() {
        let config = config(&[(
            "REDIS_CLUSTER_NODES",
            " 10.0.0.1:7000, redis-2.internal:7001,[::1]:7002 ,redis://:pw@10.0.0.4:7003,",
        )])
        .unwrap();
        assert_eq!(
            config.redis_cluster_nodes,
            [
                "redis://10.0.0.1:7000",
                "redis://redis-2.internal:7001",
                "redis://[::1]:7002",
                "redis://:pw@10.0.0.4:7003",
            ]
        );
        assert_eq!(config.redis_url, None);
        let tls = config_with(&[(
            "REDIS_CLUSTER_NODES",
            "rediss://cache:pw@a:6380,rediss://cache:pw@b:6380",
        )]);
        assert_eq!(tls.redis_cluster_nodes.len(), 2);
        for unset in ["", " , "] {
            let config = config_with(&[("REDIS_CLUSTER_NODES", unset)]);
            assert!(config.redis_cluster_nodes.is_empty(), "{unset:?}");
        }
        assert!(config_with(&[]).redis_cluster_nodes.is_empty());
    }

    fn config_with(pairs: &[(&str, &str)]) -> Config {
        config(pairs).unwrap()
    }

    #[test]
    fn redis_url_and_cluster_nodes_together_are_refused() {
        let error = config_error(&[
            ("REDIS_URL", "redis://:hunter2@127.0.0.1:6379"),
            ("REDIS_CLUSTER_NODES", "127.0.0.1:7000,127.0.0.1:7001"),
        ]);
        assert!(
            error.contains("REDIS_URL") && error.contains("REDIS_CLUSTER_NODES"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
        // An empty REDIS_URL is unset, as before.
        let config = config_with(&[("REDIS_URL", ""), ("REDIS_CLUSTER_NODES", "h:7000")]);
        assert_eq!(config.redis_cluster_nodes, ["redis://h:7000"]);
    }

    #[test]
    fn bad_cluster_nodes_are_named_without_their_passwords() {
        for (list, expected) in [
            ("127.0.0.1", "127.0.0.1"),
            ("h:0", "from 1 to 65535"),
            ("h:70000", "from 1 to 65535"),
            ("h:port", "from 1 to 65535"),
            (":7000", "host"),
            ("::1:7000", "IPv6 address in brackets"),
            ("[::1]7000", "no port"),
            ("[nope]:7000", "IPv6"),
            ("http://h:7000", "\"http\""),
            ("redis://", "no host"),
            ("a:1,rediss://b:2", "mixes rediss://"),
        ] {
            let error = config_error(&[("REDIS_CLUSTER_NODES", list)]);
            assert!(error.starts_with("REDIS_CLUSTER_NODES"), "{list}: {error}");
            assert!(error.contains(expected), "{list}: {error}");
        }
        for list in [
            "user:hunter2@h:7000",
            "http://u:hunter2@h:7000",
            "h:1/hunter2",
        ] {
            let error = config_error(&[("REDIS_CLUSTER_NODES", list)]);
            assert!(error.starts_with("REDIS_CLUSTER_NODES"), "{list}: {error}");
            assert!(!error.contains("hunter2"), "{list}: {error}");
        }
    }

    #[test]
    fn a_ca_certificate_needs_tls_cluster_nodes() {
        let error = config_error(&[
            ("REDIS_CLUSTER_NODES", "h:7000,h:7001"),
            ("REDIS_CA_CERT", "/etc/redis/ca.pem"),
        ]);
        assert!(
            error.contains("REDIS_CA_CERT") && error.contains("rediss://"),
            "{error}"
        );
        let config = config_with(&[
            ("REDIS_CLUSTER_NODES", "rediss://h:7000,rediss://h:7001"),
            ("REDIS_CA_CERT", "/etc/redis/ca.pem"),
        ]);
        assert_eq!(
            config.redis_ca_cert.as_deref(),
            Some(std::path::Path::new("/etc/redis/ca.pem"))
        );
    }

    #[test]
    fn debug_shows_the_cluster_nodes_without_their_passwords() {
        let config = config_with(&[(
            "REDIS_CLUSTER_NODES",
            "rediss://cache:hunter2@a.internal:6380,rediss://cache:hunter2@b.internal:6380",
        )]);
        for debug in [format!("{config:?}"), format!("{config:#?}")] {
            assert!(!debug.contains("hunter2"), "{debug}");
            assert!(
                debug.contains("rediss://cache:***@a.internal:6380")
                    && debug.contains("rediss://cache:***@b.internal:6380"),
                "{debug}"
            );
        }
    }

    #[test]
    fn preconditions_are_required_only_when_on() {
        assert!(
            !config(&[]).unwrap().require_preconditions,
            "off by default"
        );
        assert!(
            config(&[("REQUIRE_PRECONDITIONS", "on")])
                .unwrap()
                .require_preconditions
        );
        assert!(
            !config(&[("REQUIRE_PRECONDITIONS", "off")])
                .unwrap()
                .require_preconditions
        );
        let error = config_error(&[("REQUIRE_PRECONDITIONS", "yes")]);
        assert!(error.contains("REQUIRE_PRECONDITIONS"), "{error}");
    }

    #[test]
    fn cdn_settings_have_defaults_and_bad_values_are_named() {
        let defaults = config_with(&[]);
        assert_eq!(defaults.cdn_cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(defaults.cdn_tag_headers, ["surrogate-key"]);
        assert!(defaults.varnish_purge_nodes.is_empty());
        let custom = config_with(&[
            (
                "CDN_CACHE_CONTROL",
                " max-age=600, stale-while-revalidate=30 ",
            ),
            ("CDN_TAG_HEADERS", "xkey, Surrogate-Key"),
            (
                "VARNISH_PURGE_NODES",
                "http://10.0.0.5:6081, http://10.0.0.6:6081,",
            ),
        ]);
        assert_eq!(
            custom.cdn_cache_control.as_deref(),
            Some("max-age=600, stale-while-revalidate=30")
        );
        assert_eq!(custom.cdn_tag_headers, ["xkey", "surrogate-key"]);
        assert_eq!(
            custom.varnish_purge_nodes,
            ["http://10.0.0.5:6081", "http://10.0.0.6:6081"]
        );
        let off = config_with(&[("CDN_CACHE_CONTROL", "off"), ("CDN_TAG_HEADERS", "off")]);
        assert_eq!(off.cdn_cache_control, None);
        assert!(off.cdn_tag_headers.is_empty());
        for (name, value) in [
            ("CDN_CACHE_CONTROL", "max-age=ten"),
            ("CDN_CACHE_CONTROL", "Max-Age=60"),
            ("CDN_TAG_HEADERS", "surrogate key"),
            ("VARNISH_PURGE_NODES", "https://10.0.0.5:6443"),
            ("VARNISH_PURGE_NODES", "10.0.0.5:6081"),
        ] {
            let error = config_error(&[(name, value)]);
            assert!(error.starts_with(name), "{value}: {error}");
        }
        let error = config_error(&[("VARNISH_PURGE_NODES", "http://admin:hunter2@v:6081")]);
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn query_stats_and_plans_are_off_unless_switched_on() {
        let defaults = config(&[]).unwrap();
        assert!(!defaults.query_stats && !defaults.explain_slow_queries);
        let on = config(&[("QUERY_STATS", "on"), ("EXPLAIN_SLOW_QUERIES", "on")]).unwrap();
        assert!(on.query_stats && on.explain_slow_queries);
        let error = config_error(&[("QUERY_STATS", "yes")]);
        assert!(
            error.contains("QUERY_STATS must be `on` or `off`"),
            "{error}"
        );
    }

    #[test]
    fn layers_none_is_recognised() {
        assert_eq!(config(&[("LAYERS", "none")]).unwrap().layers, Layers::None);
    }
}
