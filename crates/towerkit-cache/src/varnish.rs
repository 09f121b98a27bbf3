//! [`VarnishPurger`]: an [`InvalidationHook`] that purges Varnish nodes by surrogate key,
//! through the xkey module, over HTTP.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::ConfigError;
use crate::hook::{HookFuture, Invalidation, InvalidationHook};
use crate::metrics;

/// The request field naming the keys to purge (`xkey.purge`).
const XKEY_PURGE: HeaderName = HeaderName::from_static("xkey-purge");
/// The request field naming the keys to purge softly (`xkey.softpurge`).
const XKEY_SOFTPURGE: HeaderName = HeaderName::from_static("xkey-softpurge");
/// The request field asking for everything to go (a ban).
const XKEY_PURGE_ALL: HeaderName = HeaderName::from_static("xkey-purge-all");

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The most of a node's answer read (to reuse the connection); the rest is dropped.
const MAX_ANSWER: usize = 64 * 1024;

/// Purges every Varnish node of a list by surrogate key when the application invalidates:
/// an [`InvalidationHook`] for
/// [`CacheLayerBuilder::invalidation_hook`](crate::CacheLayerBuilder::invalidation_hook).
///
/// Responses carry their keys in `xkey` (with
/// [`send_tags_as([XKEY])`](crate::CacheLayerBuilder::send_tags_as)); each invalidation
/// sends every node, concurrently, a `PURGE /` request whose `xkey-purge` field (or
/// `xkey-softpurge`, with [`soft`](VarnishPurgerBuilder::soft)) names the key:
/// [`Invalidation::Tag`] the tag, [`Invalidation::Path`] the path tag (`path:/products/42`),
/// and [`Invalidation::Purge`] sends `xkey-purge-all: 1` instead. A node must answer `2xx`.
/// A failed attempt (no connection, no answer within the [`timeout`](VarnishPurgerBuilder::timeout),
/// a `5xx`, `408` or `429`) is retried up to [`retries`](VarnishPurgerBuilder::retries)
/// times with a doubling [`backoff`](VarnishPurgerBuilder::backoff); other answers (a `403`
/// from the ACL) are final. A node that still fails is counted in
/// [`CDN_PURGE_FAILURES_TOTAL`](crate::metrics::CDN_PURGE_FAILURES_TOTAL) (`node` label)
/// and reported to the handle, which logs it: the node serves the old response until it
/// expires there, so alert on that counter and keep the CDN's TTL what you can afford.
/// With the defaults a dead node holds an invalidation for at most about 6.3 s (3 attempts
/// of 2 s, waits of 100 and 200 ms).
///
/// The VCL answering these requests (Varnish 6 or 7 with `varnish-modules`; on Debian,
/// `apt-get install varnish varnish-modules`), behind an ACL of the application's hosts:
///
/// ```vcl
/// vcl 4.1;
/// import xkey;
///
/// acl purgers { "127.0.0.1"; "10.0.0.0"/8; }
///
/// sub vcl_recv {
///     if (req.method == "PURGE") {
///         if (client.ip !~ purgers) {
///             return (synth(403, "Forbidden"));
///         }
///         if (req.http.xkey-purge-all) {
///             ban("obj.status != 0");
///             return (synth(200, "Banned every object"));
///         }
///         if (req.http.xkey-softpurge) {
///             set req.http.n-gone = xkey.softpurge(req.http.xkey-softpurge);
///         } else if (req.http.xkey-purge) {
///             set req.http.n-gone = xkey.purge(req.http.xkey-purge);
///         } else {
///             return (synth(400, "No xkey-purge field"));
///         }
///         return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
///     }
/// }
///
/// sub vcl_deliver {
///     # The keys are for this cache, not for clients.
///     unset resp.http.xkey;
/// }
/// ```
///
/// The example service's `varnish/default.vcl` is a complete one (it also reads its TTL
/// from `CDN-Cache-Control`).
///
/// ```
/// use std::time::Duration;
///
/// use towerkit_cache::{CacheLayer, MemoryStore, VarnishPurger, XKEY};
///
/// # fn main() -> Result<(), towerkit_cache::ConfigError> {
/// let purger = VarnishPurger::builder(["http://10.0.0.5:6081", "http://10.0.0.6:6081"])
///     .retries(2)
///     .backoff(Duration::from_millis(100))
///     .timeout(Duration::from_secs(2))
///     .build()?; // a node that is not an http:// URL is a `ConfigError`
/// let cache = CacheLayer::builder(MemoryStore::new(64 * 1024 * 1024))
///     .send_tags_as([XKEY])
///     .invalidation_hook(purger)
///     .build()?;
/// // In a handler that changed product 42: the store, then both nodes.
/// // cache.handle().invalidate_tag("product:42").await
/// # let _ = cache;
/// # Ok(())
/// # }
/// ```
pub struct VarnishPurger {
    nodes: Box<[Node]>,
    client: Client<HttpConnector, Empty<Bytes>>,
    method: Method,
    retries: u32,
    backoff: Duration,
    timeout: Duration,
    soft: bool,
}

/// A node to purge: where, and its `host:port` for metrics and logs.
#[derive(Debug, Clone)]
struct Node {
    uri: Uri,
    label: String,
}

impl fmt::Debug for VarnishPurger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VarnishPurger")
            .field("nodes", &self.nodes().collect::<Vec<_>>())
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("timeout", &self.timeout)
            .field("soft", &self.soft)
            .finish()
    }
}

impl VarnishPurger {
    /// A builder for a purger of `nodes`, each a Varnish listener's base URL
    /// (`http://10.0.0.5:6081`; purges go to its `/` unless the URL names a path).
    pub fn builder<N: Into<String>>(nodes: impl IntoIterator<Item = N>) -> VarnishPurgerBuilder {
        VarnishPurgerBuilder {
            nodes: nodes.into_iter().map(Into::into).collect(),
            retries: 2,
            backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
            soft: false,
        }
    }

    /// The nodes, as `host:port` (their `node` label in metrics).
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|node| node.label.as_str())
    }

    /// Purges what `event` names from every node, concurrently; `Err` lists the nodes that
    /// still failed after their retries.
    async fn purge(&self, event: &Invalidation) -> Result<(), PurgeError> {
        let field = match event.surrogate_key() {
            Some(key) => {
                let name = if self.soft {
                    XKEY_SOFTPURGE
                } else {
                    XKEY_PURGE
                };
                let value = HeaderValue::from_str(&key).map_err(|_| PurgeError {
                    failed: vec![format!("{event} cannot be sent in a header field")],
                })?;
                (name, value)
            }
            None => (XKEY_PURGE_ALL, HeaderValue::from_static("1")),
        };
        let purges = self.nodes.iter().map(|node| self.purge_node(node, &field));
        let failed: Vec<String> = futures_util::future::join_all(purges)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(PurgeError { failed })
        }
    }

    /// One node, with retries.
    async fn purge_node(
        &self,
        node: &Node,
        field: &(HeaderName, HeaderValue),
    ) -> Result<(), String> {
        let mut delay = self.backoff;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let outcome = match tokio::time::timeout(self.timeout, self.attempt(node, field)).await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(Failure {
                    retry: true,
                    reason: format!("no answer within {:?}", self.timeout),
                }),
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(failure) if failure.retry && attempts <= self.retries => {
                    tracing::debug!(node = %node.label, reason = %failure.reason, attempts, "varnish purge failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2).min(MAX_BACKOFF);
                }
                Err(failure) => {
                    metrics::cdn_purge_failure(&node.label);
                    return Err(format!(
                        "{}: {} ({attempts} attempt{})",
                        node.label,
                        failure.reason,
                        if attempts == 1 { "" } else { "s" }
                    ));
                }
            }
        }
    }

    /// One request to one node.
    async fn attempt(&self, node: &Node, field: &(HeaderName, HeaderValue)) -> Result<(), Failure> {
        let request = Request::builder()
            .method(self.method.clone())
            .uri(node.uri.clone())
            .header(field.0.clone(), field.1.clone())
            .body(Empty::new())
            .map_err(|error| Failure {
                retry: false,
                reason: error.to_string(),
            })?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| Failure {
                retry: true,
                reason: error_chain(&error),
            })?;
        let status = response.status();
        // The answer is a short synthetic page: read it, so the connection can be reused.
        let _ = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await;
        if status.is_success() {
            return Ok(());
        }
        Err(Failure {
            retry: status.is_server_error() || matches!(status.as_u16(), 408 | 429),
            reason: format!("answered {status}"),
        })
    }
}

impl InvalidationHook for VarnishPurger {
    fn invalidated<'a>(&'a self, event: &'a Invalidation) -> HookFuture<'a> {
        Box::pin(async move { self.purge(event).await.map_err(Into::into) })
    }
}

/// Configures a [`VarnishPurger`]: infallible setters, checked together by
/// [`build`](Self::build).
#[derive(Debug, Clone)]
pub struct VarnishPurgerBuilder {
    nodes: Vec<String>,
    retries: u32,
    backoff: Duration,
    timeout: Duration,
    soft: bool,
}

impl VarnishPurgerBuilder {
    /// How many times a failed purge of a node is tried again (no connection, no answer in
    /// time, `5xx`, `408`, `429`). Default: 2 (three attempts).
    #[must_use]
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The wait before the first retry; it doubles for each further one, up to 10 s.
    /// Default: 100 ms.
    #[must_use]
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long one attempt may take, connecting included. Default: 2 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Soft purges (`xkey-softpurge`, `xkey.softpurge`): objects are expired rather than
    /// removed, so Varnish may still serve them within their grace while it refetches.
    /// Default: off (hard purges: the next request goes to the origin).
    #[must_use]
    pub fn soft(mut self, on: bool) -> Self {
        self.soft = on;
        self
    }

    /// The purger, or the first node it cannot purge ([`ConfigError::PurgeNode`]), or
    /// [`ConfigError::NoPurgeNodes`].
    pub fn build(self) -> Result<VarnishPurger, ConfigError> {
        if self.nodes.is_empty() {
            return Err(ConfigError::NoPurgeNodes);
        }
        let nodes = self
            .nodes
            .iter()
            .map(|node| parse_node(node))
            .collect::<Result<Vec<_>, _>>()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(VarnishPurger {
            nodes: nodes.into_boxed_slice(),
            client,
            method: Method::from_bytes(b"PURGE").unwrap_or(Method::DELETE),
            retries: self.retries,
            backoff: self.backoff,
            timeout: self.timeout,
            soft: self.soft,
        })
    }
}

/// A node's URL, checked: `http`, a host, no credentials; `/` when it names no path.
fn parse_node(text: &str) -> Result<Node, ConfigError> {
    let fail = |node: &str, reason| ConfigError::PurgeNode {
        node: node.to_owned(),
        reason,
    };
    let text = text.trim();
    let uri: Uri = text.parse().map_err(|_| fail(text, "not a URL"))?;
    let Some(authority) = uri.authority() else {
        return Err(fail(text, "not an http:// URL"));
    };
    if authority.as_str().contains('@') {
        // The error is logged: never with the password.
        let shown = format!("http://…@{}", authority.host());
        return Err(fail(&shown, "credentials in the URL are not supported"));
    }
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(fail(
                text,
                "https is not supported: purge Varnish on its plain HTTP listener, on a private network",
            ));
        }
        _ => return Err(fail(text, "not an http:// URL")),
    }
    if authority.host().is_empty() {
        return Err(fail(text, "no host"));
    }
    let label = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let path = uri
        .path_and_query()
        .map(|path| path.as_str())
        .filter(|path| !path.is_empty())
        .unwrap_or("/");
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query(path)
        .build()
        .map_err(|_| fail(text, "not a URL"))?;
    Ok(Node { uri, label })
}

/// An attempt that failed, and whether trying again may help.
struct Failure {
    retry: bool,
    reason: String,
}

/// The nodes a purge failed on.
#[derive(Debug)]
struct PurgeError {
    failed: Vec<String>,
}

impl fmt::Display for PurgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "varnish purge failed: {}", self.failed.join("; "))
    }
}

impl std::error::Error for PurgeError {}

/// An error and its sources, `: `-separated (hyper's own message is only "client error").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_must_be_plain_http_urls_without_credentials() {
        let error = |node: &str| VarnishPurger::builder([node]).build().unwrap_err();
        for (node, reason) in [
            ("https://varnish:6443", "https is not supported"),
            ("varnish:6081", "not an http:// URL"),
            ("ftp://varnish", "not an http:// URL"),
            ("http://", "not a URL"),
            ("not a url", "not a URL"),
        ] {
            let error = error(node);
            assert!(
                matches!(&error, ConfigError::PurgeNode { reason: r, .. } if r.starts_with(reason)),
                "{node}: {error:?}"
            );
        }
        let error = error("http://admin:s3cret@varnish:6081");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(matches!(
            VarnishPurger::builder(Vec::<String>::new()).build(),
            Err(ConfigError::NoPurgeNodes)
        ));
    }

    #[test]
    fn nodes_are_labelled_host_and_port_and_purged_at_their_root() {
        let purger = VarnishPurger::builder(["http://10.0.0.5:6081", " http://cdn.internal "])
            .build()
            .unwrap();
        assert_eq!(
            purger.nodes().collect::<Vec<_>>(),
            ["10.0.0.5:6081", "cdn.internal:80"]
        );
        assert_eq!(purger.nodes[0].uri, "http://10.0.0.5:6081/");
        let with_path = parse_node("http://v:1/purge").unwrap();
        assert_eq!(with_path.uri, "http://v:1/purge");
        assert_eq!(purger.method.as_str(), "PURGE");
    }
}
