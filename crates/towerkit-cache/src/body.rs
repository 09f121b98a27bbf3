//! The response body the cache returns: stored bytes on a hit, the origin's body streamed
//! through on a miss, handed to a [`Recorder`] on the way when the response is to be stored.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::record::Recorder;

pin_project! {
    /// The body of a response that went through [`Cache`](crate::Cache): either stored bytes
    /// (a hit, or a response the cache generated) or the origin's body, streamed to the
    /// client as it arrives and, when the response is being stored, copied aside until it
    /// is complete.
    pub struct CacheBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Full { data: Option<Bytes> },
        // Boxed: a recorder is large and only misses have one; hits move small bodies.
        Stream { #[pin] inner: B, recorder: Option<Box<Recorder>> },
    }
}

impl<B> CacheBody<B> {
    /// A body of stored (or generated) bytes.
    pub(crate) fn full(data: Bytes) -> Self {
        Self {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        Self {
            kind: Kind::Full { data: None },
        }
    }

    /// The origin's body, untouched.
    pub(crate) fn stream(inner: B) -> Self {
        Self {
            kind: Kind::Stream {
                inner,
                recorder: None,
            },
        }
    }

    /// The origin's body, recorded for storage.
    pub(crate) fn recording(inner: B, recorder: Recorder) -> Self {
        Self {
            kind: Kind::Stream {
                inner,
                recorder: Some(Box::new(recorder)),
            },
        }
    }
}

/// An empty body: what tower-http's `CorsLayer` (preflight answers), `TimeoutLayer` and
/// `ValidateRequestHeaderLayer` answer with, so they can sit directly outside the cache.
impl<B> Default for CacheBody<B> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<B> fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full { data } => f
                .debug_struct("CacheBody::Full")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Stream { recorder, .. } => f
                .debug_struct("CacheBody::Stream")
                .field("recording", &recorder.is_some())
                .finish(),
        }
    }
}

impl<B> Body for CacheBody<B>
where
    B: Body,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
            KindProj::Stream {
                mut inner,
                recorder,
            } => {
                let frame = match inner.as_mut().poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(frame) => frame,
                };
                match frame {
                    None => {
                        if let Some(recorder) = recorder.take() {
                            recorder.finish();
                        }
                        Poll::Ready(None)
                    }
                    Some(Err(error)) => {
                        // A broken body is not stored.
                        *recorder = None;
                        Poll::Ready(Some(Err(error)))
                    }
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(mut data) => {
                            let data = data.copy_to_bytes(data.remaining());
                            if let Some(active) = recorder.as_mut() {
                                if !active.push(&data) {
                                    *recorder = None;
                                } else if inner.is_end_stream() {
                                    // Servers stop polling once `is_end_stream` says so.
                                    if let Some(recorder) = recorder.take() {
                                        recorder.finish();
                                    }
                                }
                            }
                            Poll::Ready(Some(Ok(Frame::data(data))))
                        }
                        Err(frame) => {
                            // Trailers are not stored: the response is not either.
                            *recorder = None;
                            Poll::Ready(Some(Ok(
                                frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
                            )))
                        }
                    },
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Stream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
            Kind::Stream { inner, .. } => inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Full, StreamBody};

    use super::*;

    #[tokio::test]
    async fn full_body_yields_its_bytes_once() {
        let body: CacheBody<Full<Bytes>> = CacheBody::full(Bytes::from_static(b"abc"));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");
        let empty: CacheBody<Full<Bytes>> = CacheBody::empty();
        assert!(empty.is_end_stream());
    }

    #[tokio::test]
    async fn streamed_body_passes_chunks_and_trailers_through() {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"a"))),
            Ok(Frame::data(Bytes::from_static(b"b"))),
            Ok(Frame::trailers(http::HeaderMap::new())),
        ];
        let body = CacheBody::stream(StreamBody::new(futures_util::stream::iter(frames)));
        let collected = body.collect().await.unwrap();
        assert!(collected.trailers().is_some());
        assert_eq!(collected.to_bytes(), "ab");
    }
}
