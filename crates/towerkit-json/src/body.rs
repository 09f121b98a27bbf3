//! The response body every JSON layer returns.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response that went through a JSON layer: the upstream body untouched,
    /// a rewritten (or locally generated) buffer, or a partly read upstream body replayed
    /// because it turned out too large or not rewritable.
    pub struct JsonBody<B: Body> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B: Body> {
        // The upstream body, streamed as it arrives.
        Passthrough { #[pin] inner: B },
        // The upstream body of a HEAD response, streamed as it arrives with no size hint.
        Unsized { #[pin] inner: B },
        // No data, and no size hint: a HEAD response's body.
        Nothing,
        // A complete buffer.
        Full { data: Option<Bytes> },
        // The chunks read so far, then whatever the upstream body still has.
        Replay {
            chunks: VecDeque<Bytes>,
            trailers: Option<HeaderMap>,
            error: Option<B::Error>,
            rest: Option<Pin<Box<B>>>,
        },
    }
}

impl<B: Body> JsonBody<B> {
    /// Wraps the upstream body unchanged.
    pub fn passthrough(inner: B) -> Self {
        Self {
            kind: Kind::Passthrough { inner },
        }
    }

    /// Wraps the upstream body unchanged, announcing no size: for a HEAD response whose
    /// `Content-Length` was removed, so that nothing writes one back from the size hint.
    pub(crate) fn without_size(inner: B) -> Self {
        Self {
            kind: Kind::Unsized { inner },
        }
    }

    /// No data, announcing no size: the body of a HEAD response whose `Content-Length` was
    /// removed.
    pub(crate) fn empty_without_size() -> Self {
        Self {
            kind: Kind::Nothing,
        }
    }

    /// A body made of one buffer.
    pub fn full(data: Bytes) -> Self {
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// Replays `chunks` (and trailers or an error met while reading them), then streams `rest`:
    /// the body of a response that a layer started reading and then decided to pass through
    /// (too large, trailers, an error), so the client gets exactly what the upstream sent.
    pub fn replay(
        chunks: Vec<Bytes>,
        trailers: Option<HeaderMap>,
        error: Option<B::Error>,
        rest: Option<Pin<Box<B>>>,
    ) -> Self {
        Self {
            kind: Kind::Replay {
                chunks: chunks.into(),
                trailers,
                error,
                rest,
            },
        }
    }
}

/// An empty body: what tower-http's `CorsLayer` (preflight answers), `TimeoutLayer` and
/// `ValidateRequestHeaderLayer` answer with, so they can sit directly outside a JSON layer.
impl<B: Body> Default for JsonBody<B> {
    fn default() -> Self {
        Self::full(Bytes::new())
    }
}

impl<B: Body> fmt::Debug for JsonBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Passthrough { .. } => f.write_str("JsonBody::Passthrough"),
            Kind::Unsized { .. } => f.write_str("JsonBody::Unsized"),
            Kind::Nothing => f.write_str("JsonBody::Nothing"),
            Kind::Full { data } => f
                .debug_struct("JsonBody::Full")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Replay { chunks, .. } => f
                .debug_struct("JsonBody::Replay")
                .field("chunks", &chunks.len())
                .finish(),
        }
    }
}

impl<B: Body> Body for JsonBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Passthrough { inner } | KindProj::Unsized { inner } => {
                inner.poll_frame(cx).map(|frame| {
                    frame.map(|result| {
                        result.map(|frame| {
                            frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
                        })
                    })
                })
            }
            KindProj::Full { data } => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
            KindProj::Nothing => Poll::Ready(None),
            KindProj::Replay {
                chunks,
                trailers,
                error,
                rest,
            } => {
                if let Some(chunk) = chunks.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                if let Some(trailers) = trailers.take() {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                if let Some(error) = error.take() {
                    *rest = None;
                    return Poll::Ready(Some(Err(error)));
                }
                let Some(body) = rest.as_mut() else {
                    return Poll::Ready(None);
                };
                body.as_mut().poll_frame(cx).map(|frame| {
                    frame.map(|result| {
                        result.map(|frame| {
                            frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
                        })
                    })
                })
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passthrough { inner } | Kind::Unsized { inner } => inner.is_end_stream(),
            Kind::Full { data } => data.is_none(),
            Kind::Nothing => true,
            Kind::Replay {
                chunks,
                trailers,
                error,
                rest,
            } => {
                chunks.is_empty()
                    && trailers.is_none()
                    && error.is_none()
                    && rest.as_ref().is_none_or(|body| body.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough { inner } => inner.size_hint(),
            Kind::Unsized { .. } | Kind::Nothing => SizeHint::new(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
            Kind::Replay { chunks, rest, .. } => {
                let buffered: u64 = chunks.iter().map(|chunk| chunk.len() as u64).sum();
                let rest = rest
                    .as_ref()
                    .map_or_else(|| SizeHint::with_exact(0), |body| body.size_hint());
                let mut hint = SizeHint::new();
                hint.set_lower(buffered + rest.lower());
                if let Some(upper) = rest.upper() {
                    hint.set_upper(buffered + upper);
                }
                hint
            }
        }
    }
}
