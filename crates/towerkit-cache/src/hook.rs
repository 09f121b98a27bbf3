//! [`InvalidationHook`]: what [`CacheHandle`](crate::CacheHandle) calls after an
//! invalidation, to purge caches further out (a CDN).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::cdn::surrogate_key;
use crate::key::path_tag;

/// What an application invalidated through a [`CacheHandle`](crate::CacheHandle).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// [`invalidate_tag`](crate::CacheHandle::invalidate_tag): the responses tagged so.
    Tag(String),
    /// [`invalidate_path`](crate::CacheHandle::invalidate_path): the responses for this
    /// path (without query or fragment), whatever their query string.
    Path(String),
    /// [`purge`](crate::CacheHandle::purge): every response.
    Purge,
}

impl Invalidation {
    /// The surrogate key a CDN knows the invalidated responses by, as
    /// [`send_tags_as`](crate::CacheLayerBuilder::send_tags_as) sends them: the tag, or the
    /// path tag (`path:/products/42`), with a comma or space percent-encoded; `None` for
    /// [`Purge`](Self::Purge).
    pub fn surrogate_key(&self) -> Option<Cow<'_, str>> {
        match self {
            Invalidation::Tag(tag) => Some(surrogate_key(tag)),
            Invalidation::Path(path) => {
                Some(Cow::Owned(surrogate_key(&path_tag(path)).into_owned()))
            }
            Invalidation::Purge => None,
        }
    }
}

impl fmt::Display for Invalidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalidation::Tag(tag) => write!(f, "tag {tag:?}"),
            Invalidation::Path(path) => write!(f, "path {path:?}"),
            Invalidation::Purge => f.write_str("purge"),
        }
    }
}

/// The error a hook reports: logged by the handle, never returned to its caller.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// The future of [`InvalidationHook::invalidated`].
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HookError>> + Send + 'a>>;

/// Called by [`CacheHandle`](crate::CacheHandle) after each `invalidate_tag`,
/// `invalidate_path` and `purge`, once the store is done, to purge a cache further out: a
/// CDN in front of the service. Add one with
/// [`CacheLayerBuilder::invalidation_hook`](crate::CacheLayerBuilder::invalidation_hook);
/// towerkit ships [`VarnishPurger`](crate::VarnishPurger) (feature `varnish`).
///
/// The handle's method waits for the hook, so that once it returns (a `PUT` handler
/// answering) the CDN no longer serves what was invalidated: a hook bounds its own time
/// (timeouts, bounded retries), or else spawns its work. A hook's error is logged by the
/// handle; report failures in metrics of your own too, since nothing else retries them.
///
/// The trait is object-safe: a hook is a struct holding its client and settings, whose
/// method returns a boxed future. A hook for a provider purging by key over an HTTP API
/// (Fastly's `POST /service/{id}/purge/{key}`, Cloudflare's `purge_cache` with `tags`):
///
/// ```
/// use towerkit_cache::{HookFuture, Invalidation, InvalidationHook};
///
/// /// Purges a Fastly-style API by surrogate key. `send` stands for the HTTP client.
/// struct ApiPurger {
///     service: String,
///     send: fn(String) -> Result<(), String>,
/// }
///
/// impl InvalidationHook for ApiPurger {
///     fn invalidated<'a>(&'a self, event: &'a Invalidation) -> HookFuture<'a> {
///         Box::pin(async move {
///             let url = match event.surrogate_key() {
///                 // `invalidate_tag` and `invalidate_path`: the key the responses went out
///                 // with (`send_tags_as([SURROGATE_KEY])`).
///                 Some(key) => format!("/service/{}/purge/{key}", self.service),
///                 // `purge`: everything.
///                 None => format!("/service/{}/purge_all", self.service),
///             };
///             (self.send)(url)?;
///             Ok(())
///         })
///     }
/// }
///
/// let cache = towerkit_cache::CacheLayer::builder(towerkit_cache::MemoryStore::new(1 << 20))
///     .send_tags_as([towerkit_cache::SURROGATE_KEY])
///     .invalidation_hook(ApiPurger { service: "SU1Z0isxPaozGVKXdv0eY".into(), send: |_| Ok(()) })
///     .build()
///     .unwrap();
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// cache.handle().invalidate_tag("product:42").await.unwrap(); // purges the store, then the CDN
/// # });
/// ```
pub trait InvalidationHook: Send + Sync + 'static {
    /// Purges what `event` names from the cache this hook speaks for.
    fn invalidated<'a>(&'a self, event: &'a Invalidation) -> HookFuture<'a>;
}

impl<H: InvalidationHook + ?Sized> InvalidationHook for Arc<H> {
    fn invalidated<'a>(&'a self, event: &'a Invalidation) -> HookFuture<'a> {
        (**self).invalidated(event)
    }
}

/// A layer's hooks, shared by its handles.
pub(crate) type Hooks = Arc<[Arc<dyn InvalidationHook>]>;

/// Calls every hook with the event `event` makes (made only when there is a hook), all at
/// once, and logs those that fail.
pub(crate) async fn notify(hooks: &Hooks, event: impl FnOnce() -> Invalidation) {
    if hooks.is_empty() {
        return;
    }
    let event = event();
    let results =
        futures_util::future::join_all(hooks.iter().map(|hook| hook.invalidated(&event))).await;
    for error in results.into_iter().filter_map(Result::err) {
        tracing::warn!(%event, %error, "cache invalidation hook failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_the_keys_responses_went_out_with() {
        let tag = Invalidation::Tag("product:42".into());
        assert_eq!(tag.surrogate_key().as_deref(), Some("product:42"));
        let path = Invalidation::Path("/products/a,b".into());
        assert_eq!(
            path.surrogate_key().as_deref(),
            Some("path:/products/a%2Cb")
        );
        assert_eq!(Invalidation::Purge.surrogate_key(), None);
        assert_eq!(tag.to_string(), "tag \"product:42\"");
        assert_eq!(Invalidation::Purge.to_string(), "purge");
    }
}
