//! Starts the example service: `cargo xtask run`, or `cargo run -p example-service` with
//! the environment described in `example_service::Config`.

use example_service::{AppState, Config, app};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn")),
        )
        .init();
    let config = Config::from_env()?;
    let address = config.bind_addr.clone();
    let layers = config.layers;
    let state = AppState::connect(config).await?;
    let listener = tokio::net::TcpListener::bind(&address).await?;
    tracing::info!(?layers, "listening on http://{address}");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown())
        .await?;
    tracing::info!("shut down");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM; in-flight requests then finish before the process exits.
async fn shutdown() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
