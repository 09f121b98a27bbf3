//! `VarnishPurger` against HTTP servers that answer as a node would, or fail as one can:
//! the requests it sends, its retries, its timeouts and the failures it counts. The purge
//! of a real Varnish with xkey is the example service's `tests/varnish.rs`.

#![cfg(feature = "varnish")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use towerkit_cache::metrics::CDN_PURGE_FAILURES_TOTAL;
use towerkit_cache::{CacheLayer, Invalidation, InvalidationHook, MemoryStore, VarnishPurger};
use towerkit_test_support::Metrics;

/// What a node does with a request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Never answers (the connection stays open).
    Hang,
}

/// An HTTP/1.1 server on 127.0.0.1 answering the n-th request with `script[n]` (the last
/// entry repeats), recording each request head.
struct Node {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Node {
    async fn start(script: &[Reply]) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<[Reply]> = script.into();
        let seen = heads.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        // One request head (a PURGE has no body).
                        while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buffer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                        buffer.drain(..end);
                        let n = {
                            let mut heads = seen.lock().unwrap();
                            heads.push(head);
                            heads.len() - 1
                        };
                        match script[n.min(script.len() - 1)] {
                            Reply::Hang => {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                return;
                            }
                            Reply::Status(status) => {
                                let answer =
                                    format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                                if stream.write_all(answer.as_bytes()).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Node { port, heads }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn label(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn failures(metrics: &Metrics, node: &str) -> u64 {
    metrics.counter(CDN_PURGE_FAILURES_TOTAL, &[("node", node)])
}

fn quick(nodes: &[String]) -> towerkit_cache::VarnishPurgerBuilder {
    VarnishPurger::builder(nodes.iter().cloned())
        .backoff(Duration::from_millis(10))
        .timeout(Duration::from_millis(300))
}

#[tokio::test]
async fn every_node_is_purged_by_the_key_of_each_event() {
    let nodes = [
        Node::start(&[Reply::Status(200)]).await,
        Node::start(&[Reply::Status(200)]).await,
    ];
    let purger = quick(&nodes.each_ref().map(Node::url)).build().unwrap();
    let layer = CacheLayer::builder(MemoryStore::new(1 << 20))
        .invalidation_hook(purger)
        .build()
        .unwrap();
    let handle = layer.handle();
    handle.invalidate_tag("product:42").await.unwrap();
    handle
        .invalidate_path("/products/4,2?page=2")
        .await
        .unwrap();
    handle.purge().await.unwrap();
    for node in &nodes {
        let heads = node.heads();
        assert_eq!(heads.len(), 3, "{heads:?}");
        for head in &heads {
            assert!(head.starts_with("PURGE / HTTP/1.1\r\n"), "{head}");
            assert_eq!(field(head, "host"), Some(node.label().as_str()), "{head}");
        }
        assert_eq!(field(&heads[0], "xkey-purge"), Some("product:42"));
        assert_eq!(field(&heads[1], "xkey-purge"), Some("path:/products/4%2C2"));
        assert_eq!(field(&heads[2], "xkey-purge"), None);
        assert_eq!(field(&heads[2], "xkey-purge-all"), Some("1"));
    }
}

#[tokio::test]
async fn soft_purges_ask_for_a_soft_purge() {
    let node = Node::start(&[Reply::Status(200)]).await;
    let purger = quick(&[node.url()]).soft(true).build().unwrap();
    purger
        .invalidated(&Invalidation::Tag("products".into()))
        .await
        .unwrap();
    let heads = node.heads();
    assert_eq!(field(&heads[0], "xkey-softpurge"), Some("products"));
    assert_eq!(field(&heads[0], "xkey-purge"), None);
}

#[tokio::test]
async fn server_errors_and_unanswered_attempts_are_retried() {
    let metrics = Metrics::capture();
    let node = Node::start(&[
        Reply::Status(503),
        Reply::Hang,
        Reply::Status(429),
        Reply::Status(200),
    ])
    .await;
    let purger = quick(&[node.url()]).retries(3).build().unwrap();
    purger
        .invalidated(&Invalidation::Tag("t".into()))
        .await
        .unwrap();
    assert_eq!(node.heads().len(), 4);
    assert_eq!(failures(&metrics, &node.label()), 0);
}

#[tokio::test]
async fn a_node_still_failing_after_its_retries_is_counted_and_the_others_are_purged() {
    let metrics = Metrics::capture();
    let failing = Node::start(&[Reply::Status(503)]).await;
    let healthy = Node::start(&[Reply::Status(200)]).await;
    // Nothing listens on a port just released.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dead_url = format!("http://127.0.0.1:{dead}");
    let purger = quick(&[failing.url(), healthy.url(), dead_url])
        .retries(2)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = purger
        .invalidated(&Invalidation::Tag("t".into()))
        .await
        .unwrap_err()
        .to_string();
    // Three attempts each, waits of 10 and 20 ms, all nodes at once.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(failing.heads().len(), 3);
    assert_eq!(healthy.heads().len(), 1);
    assert!(
        error.contains(&format!("{}: answered 503", failing.label())),
        "{error}"
    );
    assert!(error.contains(&format!("127.0.0.1:{dead}: ")), "{error}");
    assert!(error.contains("3 attempts"), "{error}");
    assert!(!error.contains(&healthy.label()), "{error}");
    assert_eq!(failures(&metrics, &failing.label()), 1);
    assert_eq!(failures(&metrics, &format!("127.0.0.1:{dead}")), 1);
    assert_eq!(failures(&metrics, &healthy.label()), 0);
}

#[tokio::test]
async fn a_refusal_is_final_and_a_hung_node_is_bounded_by_the_timeout() {
    let metrics = Metrics::capture();
    let refusing = Node::start(&[Reply::Status(403)]).await;
    let hung = Node::start(&[Reply::Hang]).await;
    let purger = quick(&[refusing.url(), hung.url()])
        .retries(1)
        .build()
        .unwrap();
    let started = Instant::now();
    let error = purger
        .invalidated(&Invalidation::Purge)
        .await
        .unwrap_err()
        .to_string();
    // Two attempts of 300 ms and a wait of 10 ms for the hung node.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(refusing.heads().len(), 1, "a 403 is not retried");
    assert_eq!(hung.heads().len(), 2);
    assert!(
        error.contains("answered 403 Forbidden (1 attempt)"),
        "{error}"
    );
    assert!(
        error.contains("no answer within 300ms (2 attempts)"),
        "{error}"
    );
    assert_eq!(failures(&metrics, &refusing.label()), 1);
    assert_eq!(failures(&metrics, &hung.label()), 1);
}
