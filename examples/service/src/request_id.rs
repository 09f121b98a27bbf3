//! Request ids without a system call per request ([`next_request_id`]), set and echoed by
//! one layer ([`RequestIdLayer`]).
//!
//! tower-http's `MakeRequestUuid` asks the operating system for 16 random bytes on every
//! request (`getrandom`, a system call), then formats a `String` and copies it into the
//! header value. An id here is 32 lowercase hex digits: 16 for a random number drawn once
//! per process, 16 for a per-process counter passed through a keyed bijection. So ids are
//! unique within a process (the counter never repeats, and the bijection keeps it so),
//! unique across instances and restarts but for a 2⁻⁶⁴ chance per pair of processes, and
//! formatted on the stack; the one allocation left is the header value's own copy.
//!
//! A request id is a correlation id, not a secret: a client may send its own
//! ([`RequestIdLayer`] keeps it), and nothing must trust one. The scrambling is not
//! cryptography; it only keeps the ids from reading as a request count, so that they do not
//! tell a client at a glance how many requests the instance has served.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use axum::http::header::Entry;
use axum::http::{HeaderName, HeaderValue, Request, Response};

/// Layer: each request's id in `header`, the caller's or a new one ([`next_request_id`]),
/// set on the request for everything below (handlers, the trace's span, logs) and echoed
/// on the response unless the response carries one already. tower-http's
/// `SetRequestIdLayer` and `PropagateRequestIdLayer` in one, minus what this service does
/// not use: the `RequestId` request and response extensions (a map allocation per request)
/// and a second lookup of the header on each side.
#[derive(Clone, Debug)]
pub struct RequestIdLayer {
    header: HeaderName,
}

impl RequestIdLayer {
    /// Ids in `header` (`x-request-id`).
    pub fn new(header: HeaderName) -> Self {
        Self { header }
    }
}

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestIds<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIds {
            inner,
            header: self.header.clone(),
        }
    }
}

/// The service of [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct RequestIds<S> {
    inner: S,
    header: HeaderName,
}

impl<S, B, R> tower::Service<Request<B>> for RequestIds<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = match request.headers_mut().entry(self.header.clone()) {
            Entry::Occupied(entry) => entry.get().clone(),
            Entry::Vacant(entry) => entry.insert(next_request_id()).clone(),
        };
        RequestIdFuture {
            inner: self.inner.call(request),
            echo: Some((self.header.clone(), id)),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestIds`]: the inner one, then the id on the response.
    #[derive(Debug)]
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        // The header and the request's id, until the response has them.
        echo: Option<(HeaderName, HeaderValue)>,
    }
}

impl<F, R, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some((header, id))) = (&mut result, this.echo.take()) {
            response.headers_mut().entry(header).or_insert(id);
        }
        Poll::Ready(result)
    }
}

/// The next id of this process, as a header value: 32 lowercase hex digits, unique per
/// process and, with overwhelming probability, across processes.
pub fn next_request_id() -> HeaderValue {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let keys = process_keys();
    let count = NEXT.fetch_add(1, Ordering::Relaxed);
    let digits = format_id(keys.prefix, scramble(count, keys));
    // Hex digits are always a valid header value; the fallback is never taken.
    HeaderValue::from_bytes(&digits).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// What a process draws once: the id prefix and the scrambling keys.
#[derive(Debug)]
struct Keys {
    prefix: u64,
    xor: u64,
    multipliers: [u64; 2],
}

/// The process's keys, drawn from the operating system on first use.
fn process_keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut seed = [0_u8; 32];
        if getrandom::fill(&mut seed).is_err() {
            // No OS randomness (never seen on the supported platforms): std's hasher keys,
            // which std seeds from the OS itself or else from the time and address space.
            seed = fallback_seed();
        }
        let word = |i: usize| {
            let mut bytes = [0_u8; 8];
            bytes.copy_from_slice(&seed[i * 8..i * 8 + 8]);
            u64::from_le_bytes(bytes)
        };
        Keys {
            prefix: word(0),
            xor: word(1),
            // Odd: multiplying by an odd number is a bijection of u64.
            multipliers: [word(2) | 1, word(3) | 1],
        }
    })
}

/// 32 bytes from std's randomly keyed hasher.
fn fallback_seed() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut seed = [0_u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(i);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    seed
}

/// `count` through a keyed bijection of u64 (xor, odd multiplications, xor-shifts: each
/// step is invertible, so distinct counts give distinct results).
fn scramble(count: u64, keys: &Keys) -> u64 {
    let mut x = count ^ keys.xor;
    x = x.wrapping_mul(keys.multipliers[0]);
    x ^= x >> 32;
    x = x.wrapping_mul(keys.multipliers[1]);
    x ^= x >> 29;
    x
}

/// `high` then `low` as 32 lowercase hex digits.
fn format_id(high: u64, low: u64) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let value = (u128::from(high) << 64) | u128::from(low);
    let mut digits = [0_u8; 32];
    for (i, digit) in digits.iter_mut().enumerate() {
        let shift = 124 - 4 * i;
        *digit = HEX[((value >> shift) & 0xf) as usize];
    }
    digits
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::convert::Infallible;

    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::stack::X_REQUEST_ID;

    /// Runs `request` through [`RequestIdLayer`] around a handler that answers with the id
    /// it saw (and, given `own`, an id of its own in the response): (seen, echoed).
    async fn through(
        request: Request<()>,
        own: Option<&'static str>,
    ) -> (HeaderValue, HeaderValue) {
        let handler = service_fn(move |request: Request<()>| async move {
            let seen = request.headers()[&X_REQUEST_ID].clone();
            let mut response = Response::new(seen);
            if let Some(own) = own {
                response
                    .headers_mut()
                    .insert(X_REQUEST_ID, HeaderValue::from_static(own));
            }
            Ok::<_, Infallible>(response)
        });
        let response = RequestIdLayer::new(X_REQUEST_ID)
            .layer(handler)
            .oneshot(request)
            .await
            .unwrap();
        let echoed = response.headers()[&X_REQUEST_ID].clone();
        (response.into_body(), echoed)
    }

    #[tokio::test]
    async fn a_request_without_an_id_gets_one_and_the_response_echoes_it() {
        let (seen, echoed) = through(Request::new(()), None).await;
        assert_eq!(seen.len(), 32);
        assert!(seen.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_eq!(echoed, seen);
        let (again, _) = through(Request::new(()), None).await;
        assert_ne!(again, seen, "each request gets its own id");
    }

    #[tokio::test]
    async fn the_callers_id_is_kept_and_echoed() {
        let request = Request::builder()
            .header(X_REQUEST_ID, "caller-42")
            .body(())
            .unwrap();
        let (seen, echoed) = through(request, None).await;
        assert_eq!(seen, "caller-42");
        assert_eq!(echoed, "caller-42");
    }

    #[tokio::test]
    async fn a_response_that_names_its_own_id_keeps_it() {
        let (seen, echoed) = through(Request::new(()), Some("from-the-handler")).await;
        assert_eq!(echoed, "from-the-handler");
        assert_ne!(seen, echoed);
    }

    #[test]
    fn ids_are_32_lowercase_hex_digits_sharing_the_process_prefix() {
        let first = next_request_id();
        let second = next_request_id();
        for id in [&first, &second] {
            let text = id.to_str().unwrap();
            assert_eq!(text.len(), 32, "{text}");
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{text}"
            );
        }
        assert_eq!(first.as_bytes()[..16], second.as_bytes()[..16]);
        assert_ne!(first, second);
    }

    #[test]
    fn a_hundred_thousand_ids_from_several_threads_are_distinct() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..25_000).map(|_| next_request_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = HashSet::new();
        for thread in threads {
            for id in thread.join().unwrap() {
                assert!(seen.insert(id.clone()), "{id:?} was made twice");
            }
        }
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn consecutive_counts_do_not_read_as_consecutive_ids() {
        let keys = process_keys();
        let ids: Vec<u64> = (0..1000).map(|count| scramble(count, keys)).collect();
        let steps_of_one = ids
            .windows(2)
            .filter(|w| w[1].wrapping_sub(w[0]) == 1)
            .count();
        assert_eq!(steps_of_one, 0, "the counter shows through");
        let distinct: HashSet<u64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn formatting_writes_the_high_word_first() {
        assert_eq!(
            &format_id(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210),
            b"0123456789abcdeffedcba9876543210"
        );
    }

    #[test]
    fn the_fallback_seed_is_not_constant() {
        assert_ne!(fallback_seed(), fallback_seed());
        assert_ne!(fallback_seed(), [0; 32]);
    }
}
