//! The response body: the inner body untouched, or tower-http's compressing body over a
//! fused, byte-counting view of it.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_http::BoxError;
use tower_http::compression::CompressionBody as HttpCompressionBody;

use crate::encoding::Encoding;
use crate::metrics;

pin_project! {
    /// The response body of [`Compression`](crate::Compression): the inner body as it was,
    /// or its compressed form.
    ///
    /// Data frames are [`Bytes`] (copied out of the inner buffer type only when it is not
    /// `Bytes` already); errors are boxed. Trailers pass through.
    pub struct CompressionBody<B>
    where
        B: Body,
    {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B>
    where
        B: Body,
    {
        Identity {
            #[pin]
            body: B,
        },
        // Boxed: an encoder's state is kilobytes (about 5.8 KB), and a response moves through
        // every layer outside this one by value, so inline it would be copied on every move of
        // every response, compressed or not (a cache hit outside included). Only compressed
        // responses pay the allocation, next to the encoder's own.
        Compressed {
            body: Pin<Box<HttpCompressionBody<Fused<B>>>>,
            meter: Meter,
        },
    }
}

/// What a compressed body has sent, recorded once it ends.
#[derive(Debug)]
struct Meter {
    encoding: Option<Encoding>,
    output: u64,
    recorded: bool,
    /// The compression's span (`trace.rs`), closed when the body ends.
    span: tracing::Span,
}

impl<B: Body> CompressionBody<B> {
    pub(crate) fn identity(body: B) -> Self {
        Self {
            kind: Kind::Identity { body },
        }
    }

    /// `encoding` is the coding tower-http applied, `None` if it left the body alone.
    pub(crate) fn compressed(
        body: HttpCompressionBody<Fused<B>>,
        encoding: Option<Encoding>,
    ) -> Self {
        Self {
            kind: Kind::Compressed {
                body: Box::pin(body),
                meter: Meter {
                    encoding,
                    output: 0,
                    recorded: false,
                    span: encoding.map_or_else(tracing::Span::none, crate::trace::compression),
                },
            },
        }
    }

    /// Whether the body is being compressed.
    pub fn is_compressed(&self) -> bool {
        matches!(&self.kind, Kind::Compressed { meter, .. } if meter.encoding.is_some())
    }
}

/// The inner body's default, uncompressed: what tower-http's `CorsLayer` (preflight
/// answers), `TimeoutLayer` and `ValidateRequestHeaderLayer` answer with, so they can sit
/// directly outside the compression layer (as tower-http's own `CompressionBody` allows).
impl<B: Body + Default> Default for CompressionBody<B> {
    fn default() -> Self {
        Self::identity(B::default())
    }
}

impl<B: Body> fmt::Debug for CompressionBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoding = match &self.kind {
            Kind::Identity { .. } => None,
            Kind::Compressed { meter, .. } => meter.encoding,
        };
        f.debug_struct("CompressionBody")
            .field("encoding", &encoding)
            .finish_non_exhaustive()
    }
}

impl<B> Body for CompressionBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Identity { body } => match ready!(body.poll_frame(cx)) {
                Some(Ok(frame)) => Poll::Ready(Some(Ok(
                    frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
                ))),
                Some(Err(error)) => Poll::Ready(Some(Err(error.into()))),
                None => Poll::Ready(None),
            },
            KindProj::Compressed { body, meter } => {
                let polled = ready!(body.as_mut().poll_frame(cx));
                match &polled {
                    Some(Ok(frame)) => {
                        meter.output += frame.data_ref().map_or(0, |data| data.len() as u64);
                    }
                    Some(Err(_)) => meter.recorded = true,
                    None => {
                        let input = body.as_ref().get_ref().get_ref().bytes;
                        meter.record(input);
                    }
                }
                Poll::Ready(polled)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Identity { body } => body.is_end_stream(),
            Kind::Compressed { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Identity { body } => body.size_hint(),
            Kind::Compressed { body, .. } => body.size_hint(),
        }
    }
}

impl Meter {
    /// Records the body's figures once, when it has been sent to its end. An empty input (a
    /// body compressed to nothing but the coding's framing) is not a compression worth counting.
    fn record(&mut self, input: u64) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let Some(encoding) = self.encoding else {
            return;
        };
        crate::trace::finished(&mut self.span, input, self.output);
        if input == 0 {
            return;
        }
        metrics::compressed(encoding, input, self.output);
    }
}

pin_project! {
    /// The inner body as the compressor sees it: fused, so it is never polled again once it
    /// has ended or failed (tower-http 0.7.1 polls once more after the end, and a body built
    /// on a non-fused stream panics then: tower-http issue #732), and counting the data bytes
    /// that went through.
    pub(crate) struct Fused<B> {
        #[pin]
        body: B,
        done: bool,
        bytes: u64,
    }
}

impl<B> Fused<B> {
    pub(crate) fn new(body: B) -> Self {
        Self {
            body,
            done: false,
            bytes: 0,
        }
    }
}

impl<B: Body> Body for Fused<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let polled = ready!(this.body.poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                *this.bytes += frame.data_ref().map_or(0, |data| data.remaining() as u64)
            }
            Some(Err(_)) | None => *this.done = true,
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            SizeHint::with_exact(0)
        } else {
            self.body.size_hint()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use http_body_util::BodyExt;

    use super::*;

    /// A body that yields its chunks then `None` once, and counts polls after that.
    struct Strict {
        chunks: VecDeque<Result<Bytes, &'static str>>,
        ended: bool,
        polls_after_end: usize,
    }

    impl Body for Strict {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            if self.ended {
                self.polls_after_end += 1;
                return Poll::Ready(None);
            }
            match self.chunks.pop_front() {
                Some(Ok(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                Some(Err(error)) => {
                    self.ended = true;
                    Poll::Ready(Some(Err(error)))
                }
                None => {
                    self.ended = true;
                    Poll::Ready(None)
                }
            }
        }
    }

    fn strict(chunks: Vec<Result<Bytes, &'static str>>) -> Strict {
        Strict {
            chunks: chunks.into(),
            ended: false,
            polls_after_end: 0,
        }
    }

    #[test]
    fn a_body_stays_small_whatever_the_encoder_holds() {
        // Every layer outside moves the response by value: an inline encoder state (about
        // 5.8 KB) was copied on each move, hits of a cache outside included.
        let size = size_of::<CompressionBody<http_body_util::Full<Bytes>>>();
        assert!(size <= 64, "CompressionBody is {size} bytes");
    }

    #[tokio::test]
    async fn fused_body_is_not_polled_after_its_end() {
        let mut fused = Fused::new(strict(vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"de")),
        ]));
        let mut frames = 0;
        while let Some(frame) = fused.frame().await {
            frame.unwrap();
            frames += 1;
        }
        for _ in 0..3 {
            assert!(fused.frame().await.is_none());
        }
        assert_eq!(frames, 2);
        assert_eq!(fused.bytes, 5);
        assert!(fused.is_end_stream());
        assert_eq!(fused.size_hint().exact(), Some(0));
        assert_eq!(fused.body.polls_after_end, 0);
    }

    #[tokio::test]
    async fn fused_body_is_not_polled_after_an_error() {
        let mut fused = Fused::new(strict(vec![
            Ok(Bytes::from_static(b"abc")),
            Err("upstream reset"),
        ]));
        assert!(fused.frame().await.unwrap().is_ok());
        assert_eq!(fused.frame().await.unwrap().unwrap_err(), "upstream reset");
        assert!(fused.frame().await.is_none());
        assert_eq!(fused.body.polls_after_end, 0);
    }
}
