//! Temporary: interleaved wall time of the bare service vs TimingLayer around it.
use std::convert::Infallible;
use std::time::Instant;

use axum::body::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};
use towerkit_timing::TimingLayer;

fn bare()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone
{
    let body = Bytes::from(vec![b'x'; 1000]);
    service_fn(move |_r: Request<()>| {
        let body = body.clone();
        async move {
            let mut response = Response::new(Full::new(body));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
    })
}

async fn run<S>(service: &S, n: usize) -> f64
where
    S: Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone,
{
    let start = Instant::now();
    for _ in 0..n {
        let response = service
            .clone()
            .oneshot(Request::get("/").body(()).unwrap())
            .await
            .unwrap();
        std::hint::black_box(response.into_body().collect().await.unwrap().to_bytes());
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let none = bare();
        let timing = TimingLayer::new().layer(bare());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for round in 0..200 {
            if round % 2 == 0 {
                a.push(run(&none, 5000).await);
                b.push(run(&timing, 5000).await);
            } else {
                b.push(run(&timing, 5000).await);
                a.push(run(&none, 5000).await);
            }
        }
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let (ma, mb) = (a[a.len() / 2], b[b.len() / 2]);
        println!(
            "none {ma:.0} ns, timing {mb:.0} ns, added {:.0} ns (min-to-min {:.0})",
            mb - ma,
            b[0] - a[0]
        );
    });
}
