//! [`Predicate`]: which requests the cache handles.

use http::request;

/// Decides which requests the cache may answer and store.
///
/// Implemented for `()` (every GET and HEAD; the default) and for closures over the request
/// head. A request the predicate rejects goes to the origin untouched and its response is
/// not stored (`Cache-Status: …; fwd=bypass`).
pub trait Predicate: Send + Sync + 'static {
    /// Whether the cache handles this request.
    fn should_cache(&self, request: &request::Parts) -> bool;
}

impl Predicate for () {
    fn should_cache(&self, _request: &request::Parts) -> bool {
        true
    }
}

impl<F> Predicate for F
where
    F: Fn(&request::Parts) -> bool + Send + Sync + 'static,
{
    fn should_cache(&self, request: &request::Parts) -> bool {
        self(request)
    }
}
