//! Without `OTEL_EXPORTER_OTLP_ENDPOINT`, [`telemetry::init`] installs a subscriber of log
//! events only: the towerkit layers' INFO spans are disabled (no span is built per
//! request), while warnings still reach the log. Its own test binary: `init` sets the
//! process-wide subscriber.

use example_service::telemetry::{self, TelemetryConfig};

#[test]
fn without_an_exporter_spans_are_off_and_log_lines_are_on() {
    let config = TelemetryConfig::from_lookup(|_| None).expect("the defaults are valid");
    assert!(config.endpoint.is_none());
    let _telemetry = telemetry::init(&config).expect("a subscriber");
    assert!(
        tracing::info_span!(target: "towerkit_timing", "http.server.request").is_disabled(),
        "an INFO span of a towerkit layer is built although nothing exports it"
    );
    assert!(tracing::error_span!("anything").is_disabled());
    assert!(
        tracing::enabled!(tracing::Level::WARN),
        "warnings no longer reach the log"
    );
}
