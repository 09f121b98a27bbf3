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
//! | `http_server_compression_ratio` | histogram | ratio (uncompressed / compressed) | `encoding` = `zstd`, `br`, `gzip`, `deflate` |

use crate::encoding::Encoding;

/// Counter of uncompressed bytes fed to each coding, labelled `encoding`.
pub const INPUT_BYTES_TOTAL: &str = "http_server_compression_input_bytes_total";
/// Counter of compressed bytes sent for each coding, labelled `encoding`.
pub const OUTPUT_BYTES_TOTAL: &str = "http_server_compression_output_bytes_total";
/// Histogram of compression ratios (uncompressed size / compressed size, so 5.0 means the
/// client received a fifth of the bytes), labelled `encoding`.
pub const RATIO: &str = "http_server_compression_ratio";

/// Records one compressed body: `input` bytes in, `output` bytes out.
pub(crate) fn compressed(encoding: Encoding, input: u64, output: u64) {
    let label = encoding.as_str();
    ::metrics::counter!(INPUT_BYTES_TOTAL, "encoding" => label).increment(input);
    ::metrics::counter!(OUTPUT_BYTES_TOTAL, "encoding" => label).increment(output);
    if output > 0 {
        ::metrics::histogram!(RATIO, "encoding" => label).record(input as f64 / output as f64);
    }
}
