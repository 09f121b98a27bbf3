//! Starts the example service: `cargo xtask run`, or `cargo run -p example-service` with
//! the environment described in `example_service::Config`.

use std::process::ExitCode;

use example_service::telemetry::{self, TelemetryConfig};
use example_service::{
    AppState, Config, admin_app, app, install_metrics_recorder, secret::redact_url,
};

#[tokio::main]
async fn main() -> ExitCode {
    // Logs, and traces when OTEL_EXPORTER_OTLP_ENDPOINT is set (see `telemetry`).
    let telemetry = match TelemetryConfig::from_lookup(|name| std::env::var(name).ok())
        .map_err(|e| e.to_string())
        .and_then(|config| telemetry::init(&config).map_err(|e| e.to_string()))
    {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("example-service: {error}");
            return ExitCode::FAILURE;
        }
    };
    // First: metrics recorded before the recorder exists are lost.
    install_metrics_recorder();
    // The error's message, not its `Debug`: a configuration mistake reads as a sentence.
    let code = match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("example-service: {error}");
            ExitCode::FAILURE
        }
    };
    // The spans still queued are exported before the process ends (blocking: off the
    // runtime's workers).
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let address = config.bind_addr.clone();
    let admin_address = config.admin_bind_addr.clone();
    let layers = config.layers;
    if config.api_tokens.is_empty() {
        tracing::warn!("API_TOKENS is not set: every write (POST, PUT, DELETE) gets a 401");
    }
    let redis = match (&config.redis_url, config.redis_cluster_nodes.as_slice()) {
        (Some(url), _) => redact_url(url),
        (None, []) => "unset".to_owned(),
        (None, nodes) => {
            let nodes: Vec<String> = nodes.iter().map(|node| redact_url(node)).collect();
            format!("cluster {}", nodes.join(","))
        }
    };
    tracing::info!(
        database = %redact_url(&config.database_url),
        %redis,
        api_tokens = config.api_tokens.len(),
        "starting"
    );
    let state = AppState::connect(config).await?;
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("BIND_ADDR {address}: {e}"))?;
    let admin_listener = tokio::net::TcpListener::bind(&admin_address)
        .await
        .map_err(|e| format!("ADMIN_BIND_ADDR {admin_address}: {e}"))?;
    tracing::info!(?layers, "listening on http://{address}");
    tracing::info!("operations (/metrics, /health) on http://{admin_address}");
    // Both listeners stop on the same signal; each lets its in-flight requests finish.
    let (stop, stopped) = tokio::sync::watch::channel(());
    let admin = tokio::spawn({
        let mut stopped = stopped;
        let router = admin_app(state.clone());
        async move {
            axum::serve(admin_listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.changed().await;
                })
                .await
        }
    });
    let router = app(state.clone());
    // Warming runs beside serving: readiness does not wait for it, and early requests for a
    // path being warmed join its origin call.
    tokio::spawn({
        let router = router.clone();
        async move { state.warm_cache(&router).await }
    });
    let public = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown().await;
        let _ = stop.send(());
    });
    public.await?;
    admin.await??;
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
