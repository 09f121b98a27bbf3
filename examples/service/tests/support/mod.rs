//! Test harness: each `TestApp` gets a database of its own (created from scratch, migrated,
//! seeded, dropped afterwards) and drives the real `app()` with `oneshot`. It needs only
//! PostgreSQL and Redis (`DATABASE_URL`, `REDIS_URL`): the tests that start throwaway servers
//! import towerkit-test-support's `servers` themselves.

#![allow(dead_code, unreachable_pub)]

pub mod exposition;

use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, request};
use bytes::Bytes;
use example_service::{ApiTokens, AppState, Config, admin_app, app};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The bearer token the test apps accept (`API_TOKENS`), sent by [`TestApp::write`].
pub const TOKEN: &str = "test-token-2f9c41d07b";

/// `Authorization: Bearer {TOKEN}`.
pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A header's value as text, or "" when absent.
pub fn header(reply: &Reply, name: &str) -> String {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `url` with its database name replaced.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// The application on a database of its own.
pub struct TestApp {
    pub router: axum::Router,
    /// The state the routers share (the cache's handle, warming).
    pub state: AppState,
    /// The operations router (`/metrics`, health): the admin listener's.
    pub admin: axum::Router,
    pub config: Config,
    database: Option<TestDatabase>,
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with a configuration adjusted by `adjust` (which may point `database_url`
    /// elsewhere; then no database is created).
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::from_lookup(|_| None).expect("default configuration");
        config.database_url = String::new();
        config.redis_url = None;
        config.api_tokens = ApiTokens::parse(TOKEN).expect("a valid token");
        adjust(&mut config);
        let database = if config.database_url.is_empty() {
            let database = TestDatabase::create().await;
            config.database_url = database.url.clone();
            Some(database)
        } else {
            None
        };
        let state = AppState::connect(config.clone())
            .await
            .expect("the service starts");
        TestApp {
            router: app(state.clone()),
            admin: admin_app(state.clone()),
            state,
            config,
            database,
        }
    }

    /// `count` instances started at the same moment on one new, empty database, as
    /// `cargo xtask run --instances N` or a rolling deployment starts them: each
    /// `AppState::connect` (migrations included) runs concurrently on a connection of its
    /// own. The results in start order; the first `Ok` owns the database.
    pub async fn start_together(count: usize) -> Vec<Result<TestApp, String>> {
        let database = TestDatabase::create().await;
        let mut config = Config::from_lookup(|_| None).expect("default configuration");
        config.database_url = database.url.clone();
        config.redis_url = None;
        config.api_tokens = ApiTokens::parse(TOKEN).expect("a valid token");
        let starts: Vec<_> = (0..count)
            .map(|_| tokio::spawn(AppState::connect(config.clone())))
            .collect();
        let mut apps = Vec::with_capacity(count);
        let mut database = Some(database);
        for start in starts {
            let app = match start.await {
                Ok(Ok(state)) => Ok(TestApp {
                    router: app(state.clone()),
                    admin: admin_app(state.clone()),
                    state,
                    config: config.clone(),
                    database: None,
                }),
                Ok(Err(error)) => Err(error.to_string()),
                Err(panic) => Err(panic.to_string()),
            };
            apps.push(app);
        }
        // The database lives as long as the first app that started.
        if let Some(Ok(first)) = apps.iter_mut().find(|app| app.is_ok()) {
            first.database = database.take();
        }
        apps
    }

    /// Another instance of the service on the same database and cache configuration.
    pub async fn second_instance(&self) -> TestApp {
        let state = AppState::connect(self.config.clone())
            .await
            .expect("the service starts");
        TestApp {
            router: app(state.clone()),
            admin: admin_app(state.clone()),
            state,
            config: self.config.clone(),
            database: None,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header("host", "api.test")
    }

    /// A request with the bearer token, as writes need.
    pub fn write(&self, method: Method, path: &str) -> request::Builder {
        self.request(method, path).header("authorization", bearer())
    }

    pub async fn send(&self, request: request::Builder) -> Reply {
        self.send_request(request.body(Body::empty()).expect("request"))
            .await
    }

    pub async fn send_request(&self, request: Request<Body>) -> Reply {
        Self::exchange(&self.router, request).await
    }

    /// A `GET` on the admin listener's router.
    pub async fn admin_get(&self, path: &str) -> Reply {
        let request = Request::get(path)
            .header("host", "127.0.0.1:9000")
            .body(Body::empty())
            .expect("request");
        Self::exchange(&self.admin, request).await
    }

    async fn exchange(router: &axum::Router, request: Request<Body>) -> Reply {
        let response = router.clone().oneshot(request).await.expect("infallible");
        let (head, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: head.status,
            headers: head.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    /// A write with the token and a JSON body.
    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Reply {
        let request = self
            .write(method, path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        self.send_request(request).await
    }
}

/// A database created for one test and dropped (connections and all) afterwards.
struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create() -> Self {
        let name = unique("example_test");
        let admin = database_url();
        let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL is reachable");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        TestDatabase {
            url: with_database(&admin, &name),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = database_url();
        // Drop runs outside async code: a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// The router on a real listener on 127.0.0.1 (hyper's HTTP/1 server, as in production,
/// with its limits on request heads); the server task is aborted on drop.
pub struct Served {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    pub async fn start(router: axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("a bound address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Served { addr, task }
    }

    /// Sends `request` as raw bytes on a new connection and reads until the server closes
    /// it (or 10 s pass): the status line's code, `None` when the server closed without
    /// answering.
    pub async fn exchange(&self, request: &[u8]) -> RawReply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("the server accepts");
        // The server may answer and close before reading everything; a failed write is
        // not the outcome, the answer is.
        let _ = stream.write_all(request).await;
        let mut received = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => received.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        let head = String::from_utf8_lossy(&received[..received.len().min(512)]).into_owned();
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok());
        RawReply {
            status,
            head,
            timed_out: read.is_err(),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What came back on a raw connection.
#[derive(Debug)]
pub struct RawReply {
    pub status: Option<u16>,
    /// The first bytes of the answer, for messages.
    pub head: String,
    pub timed_out: bool,
}
