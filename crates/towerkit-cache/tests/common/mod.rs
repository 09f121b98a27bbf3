//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};
use towerkit_cache::CacheLayer;

/// A response as the client sees it.
#[derive(Debug)]
pub struct Seen {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn is_hit(&self) -> bool {
        self.header("cache-status").contains("; hit")
    }
}

pub async fn send<S>(service: &S, request: Request<Body>) -> Seen
where
    S: Service<
            Request<Body>,
            Response = Response<towerkit_cache::CacheBody<Body>>,
            Error = Infallible,
        > + Clone,
{
    let response = service.clone().oneshot(request).await.unwrap();
    let (head, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Seen {
        status: head.status,
        headers: head.headers,
        body,
    }
}

pub fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn with(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

/// An origin that answers every request with the configured headers and a body naming the
/// call number, counting calls.
#[derive(Clone, Default)]
pub struct Origin {
    pub calls: Arc<AtomicUsize>,
}

impl Origin {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// A service answering with `headers` (and status) from a closure of the request.
    pub fn service<F>(
        &self,
        respond: F,
    ) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static
    + use<F>
    where
        F: Fn(&Request<Body>, usize) -> Response<Body> + Clone + Send + Sync + 'static,
    {
        let calls = self.calls.clone();
        tower::service_fn(move |request: Request<Body>| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let response = respond(&request, n);
            async move { Ok::<_, Infallible>(response) }
        })
    }
}

pub fn response(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response<Body> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.into()).unwrap()
}

/// A layer over an origin answering `headers` with body `call N`.
pub fn cached(
    layer: &CacheLayer,
    origin: &Origin,
    headers: &'static [(&'static str, &'static str)],
) -> impl Service<
    Request<Body>,
    Response = Response<towerkit_cache::CacheBody<Body>>,
    Error = Infallible,
    Future: Send,
> + Clone
+ use<> {
    tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(origin.service(move |_, n| response(200, headers, format!("call {n}"))))
}

/// Polls `condition` for up to five seconds.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if condition() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}
