//! The `tracing` span of one compressed response (`http.response.compression`): opened
//! when compression starts, under the request's span, and closed when the body has been
//! sent to its end, with the coding and both sizes. `tracing-opentelemetry` (or any
//! subscriber) turns it into a trace span; nothing is recorded for a span nobody keeps.

use tracing::Span;
use tracing::field::Empty;

use crate::encoding::Encoding;

/// The span of a response compressed with `encoding`: `http.response.content_coding` now,
/// `compression.input_bytes` and `compression.output_bytes` (and
/// `http.response.body.size`, the bytes sent) when the body ends (see [`finished`]).
pub(crate) fn compression(encoding: Encoding) -> Span {
    tracing::info_span!(
        target: "towerkit_compress",
        "http.response.compression",
        http.response.content_coding = encoding.as_str(),
        http.response.body.size = Empty,
        compression.input_bytes = Empty,
        compression.output_bytes = Empty,
    )
}

/// Records the sizes of a body sent to its end on its span, and closes the span.
pub(crate) fn finished(span: &mut Span, input: u64, output: u64) {
    if span.is_disabled() {
        return;
    }
    span.record("compression.input_bytes", input);
    span.record("compression.output_bytes", output);
    span.record("http.response.body.size", output);
    // The span ends with the body, not when the body value is dropped later.
    *span = Span::none();
}
