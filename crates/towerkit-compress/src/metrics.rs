//! The metrics the layer records through the [`metrics`](https://docs.rs/metrics) crate, in
//! Prometheus form following OpenTelemetry naming, once a compressed body has been sent to its
//! end. Install any recorder (for example `metrics-exporter-prometheus`) to collect them;
//! without one they cost next to nothing. A body that is not compressed, or that is
//! compressed from zero bytes, records nothing.
//!
//! | name | type | unit | labels |
//! |---|---|---|---|
//! | `http_server_compression_input_bytes_total` | counter | bytes (uncompressed) | `encoding` = `zstd`, `br`, `gzip`, `deflate` |
//! | `http_server_compression_output_bytes_total` | counter | bytes (compressed) | `encoding` = `zstd`, `br`, `gzip`, `deflate` |
//! | `http_server_compression_ratio` | histogram | `1` (dimensionless: uncompressed / compressed; `metrics::Unit` has no such unit, so it is described without one) | `encoding` = `zstd`, `br`, `gzip`, `deflate` |
//!
//! Call [`describe`] once after installing the recorder (or the facade's
//! `towerkit::describe_metrics()`, which describes every towerkit crate): it gives each
//! metric its help text and unit (`# HELP` lines with `metrics-exporter-prometheus`). It
//! speaks to the recorder installed at the time of the call, so building the layer before
//! or after installing the recorder makes no difference; describing before installing it
//! reaches nothing.

use crate::encoding::Encoding;

/// Counter of uncompressed bytes fed to each coding, labelled `encoding`.
pub const INPUT_BYTES_TOTAL: &str = "http_server_compression_input_bytes_total";
/// Counter of compressed bytes sent for each coding, labelled `encoding`.
pub const OUTPUT_BYTES_TOTAL: &str = "http_server_compression_output_bytes_total";
/// Histogram of compression ratios (uncompressed size / compressed size, so 5.0 means the
/// client received a fifth of the bytes), labelled `encoding`.
pub const RATIO: &str = "http_server_compression_ratio";

/// Gives every metric above its help text and unit, in the recorder installed now (see the
/// module docs). Idempotent; metrics work without it, with no help text.
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        INPUT_BYTES_TOTAL,
        Unit::Bytes,
        "Uncompressed bytes of response bodies fed to each content coding"
    );
    describe_counter!(
        OUTPUT_BYTES_TOTAL,
        Unit::Bytes,
        "Compressed bytes of response bodies sent in each content coding"
    );
    describe_histogram!(
        RATIO,
        "Compression ratio of each compressed response body: uncompressed bytes per compressed byte"
    );
}

/// Records one compressed body: `input` bytes in, `output` bytes out.
pub(crate) fn compressed(encoding: Encoding, input: u64, output: u64) {
    let label = encoding.as_str();
    ::metrics::counter!(INPUT_BYTES_TOTAL, "encoding" => label).increment(input);
    ::metrics::counter!(OUTPUT_BYTES_TOTAL, "encoding" => label).increment(output);
    if output > 0 {
        ::metrics::histogram!(RATIO, "encoding" => label).record(input as f64 / output as f64);
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::DebuggingRecorder;

    use super::*;

    /// The metrics `register` records after [`describe`], each with its unit and help text
    /// (a description given for another kind of metric is not found).
    fn described(
        register: impl FnOnce(),
    ) -> Vec<(
        String,
        Option<::metrics::Unit>,
        Option<::metrics::SharedString>,
    )> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            describe();
            register();
        });
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, unit, help, _)| (key.key().name().to_owned(), unit, help))
            .collect()
    }

    #[test]
    fn describe_gives_every_metric_its_kind_a_unit_and_a_help_text() {
        let described = described(|| {
            ::metrics::counter!(INPUT_BYTES_TOTAL).increment(1);
            ::metrics::counter!(OUTPUT_BYTES_TOTAL).increment(1);
            ::metrics::histogram!(RATIO).record(2.0);
        });
        assert_eq!(described.len(), 3);
        for (name, unit, help) in described {
            // A ratio is dimensionless, which `metrics::Unit` has no name for.
            assert!(unit.is_some() || name == RATIO, "{name} has no unit");
            assert!(
                help.is_some_and(|h| !h.is_empty()),
                "{name} has no help text"
            );
        }
    }
}
