//! The towerkit example service (first cut): an axum app behind `StripNullsLayer`.
//! `cargo xtask run` starts it; `BIND_ADDR` sets the address (default 127.0.0.1:3000).

use axum::{Json, Router, routing::get};
use serde::Serialize;
use towerkit_nulls::StripNullsLayer;

#[derive(Serialize)]
struct Product {
    id: u64,
    name: &'static str,
    discount: Option<f64>,
}

/// The application's routes and layers.
fn app() -> Router {
    Router::new()
        .route(
            "/api/products/{id}",
            get(|axum::extract::Path(id): axum::extract::Path<u64>| async move {
                Json(Product { id, name: "Teapot", discount: None })
            }),
        )
        .layer(StripNullsLayer::new())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let address = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    tracing::info!("listening on http://{address}");
    axum::serve(listener, app())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn product_nulls_are_stripped() {
        let request = axum::http::Request::get("/api/products/7").body(axum::body::Body::empty()).unwrap();
        let response = super::app().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, r#"{"id":7,"name":"Teapot"}"#);
    }
}
