//! Preconditions for writes: the `Preconditions` extractor (`If-Match`,
//! `If-Unmodified-Since`; `412`) and `RequirePreconditionsLayer` (`428`).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum_core::extract::FromRequestParts;
use axum_core::response::IntoResponse;
use http::header::{IF_MATCH, IF_UNMODIFIED_SINCE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, request};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use towerkit_json::{JsonBody, Problem};

use crate::tag::{Member, is_well_formed, members, parse_tag, strong_eq_ignoring_coding};

/// The preconditions of a write request (`If-Match`, `If-Unmodified-Since`), to compare
/// with the current state of the resource before changing it. An axum extractor that never
/// rejects; [`Preconditions::from_headers`] for other stacks.
///
/// [`check`](Self::check) evaluates them as RFC 9110 §13.2.2 orders:
///
/// 1. `If-Match`, when present, decides alone: it holds when one listed tag equals the
///    current `ETag` by **strong** comparison (§13.1.1; a weak current tag never matches),
///    or it is `*` and the resource exists. A listed tag with a coding suffix (`"abc-br"`,
///    the tag towerkit-compress gives the brotli variant of `"abc"`) matches its base tag:
///    the client saw an encoding of the same representation. An `If-Match` that is not a
///    list of entity tags (or `*`) is a client error: `400`, naming the field.
/// 2. Otherwise `If-Unmodified-Since` holds when the resource's last modification, to the
///    second, is no later than the date. It is ignored (§13.1.4) when it is not a valid
///    HTTP-date or the resource has no modification time.
///
/// A failed precondition is [`PreconditionError::Failed`]: `412 Precondition Failed` as
/// `application/problem+json`.
///
/// ```
/// use axum::{Router, http::{HeaderValue, StatusCode}, routing::put};
/// use towerkit_validators::{PreconditionError, Preconditions};
/// # use tower::ServiceExt;
///
/// async fn update(preconditions: Preconditions) -> Result<StatusCode, PreconditionError> {
///     let current = HeaderValue::from_static("\"v7\""); // from the row's version column
///     preconditions.check(Some(&current), None)?;
///     // ... write ...
///     Ok(StatusCode::NO_CONTENT)
/// }
///
/// let app: Router = Router::new().route("/items/1", put(update));
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let stale = http::Request::put("/items/1").header("if-match", "\"v6\"").body(axum::body::Body::empty()).unwrap();
/// let response = app.clone().oneshot(stale).await.unwrap();
/// assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// let current = http::Request::put("/items/1").header("if-match", "\"v7\"").body(axum::body::Body::empty()).unwrap();
/// assert_eq!(app.oneshot(current).await.unwrap().status(), StatusCode::NO_CONTENT);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    if_match: Vec<HeaderValue>,
    if_unmodified_since: Option<SystemTime>,
}

impl Preconditions {
    /// Reads the preconditions of a request's headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            if_match: headers.get_all(IF_MATCH).iter().cloned().collect(),
            if_unmodified_since: headers
                .get(IF_UNMODIFIED_SINCE)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| httpdate::parse_http_date(value).ok()),
        }
    }

    /// Whether the request carries a precondition this type evaluates: an `If-Match`, or a
    /// valid `If-Unmodified-Since`.
    pub fn is_present(&self) -> bool {
        !self.if_match.is_empty() || self.if_unmodified_since.is_some()
    }

    /// Evaluates the preconditions against the current representation's `etag` and
    /// `last_modified` (`None`, `None` when the resource does not exist). See the
    /// [type docs](Self) for the rules.
    ///
    /// # Errors
    ///
    /// [`PreconditionError::Failed`] when a precondition does not hold,
    /// [`PreconditionError::Malformed`] when `If-Match` is not a list of entity tags.
    pub fn check(
        &self,
        etag: Option<&HeaderValue>,
        last_modified: Option<SystemTime>,
    ) -> Result<(), PreconditionError> {
        if !self.if_match.is_empty() {
            if !is_well_formed(self.if_match.iter()) {
                return Err(PreconditionError::Malformed { header: "If-Match" });
            }
            let current = etag.and_then(|etag| parse_tag(etag.as_bytes()));
            let exists = etag.is_some() || last_modified.is_some();
            let holds = self
                .if_match
                .iter()
                .flat_map(|line| members(line.as_bytes()))
                .any(|member| match member {
                    Member::Any => exists,
                    Member::Tag(sent) => {
                        current.is_some_and(|current| strong_eq_ignoring_coding(sent, current))
                    }
                    Member::Malformed => false,
                });
            return if holds {
                Ok(())
            } else {
                Err(PreconditionError::Failed)
            };
        }
        match (self.if_unmodified_since, last_modified) {
            (Some(since), Some(modified)) if whole_seconds(modified) > whole_seconds(since) => {
                Err(PreconditionError::Failed)
            }
            _ => Ok(()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Preconditions {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut request::Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self::from_headers(&parts.headers))
    }
}

/// Why a write's preconditions stopped it; an axum response (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreconditionError {
    /// `412 Precondition Failed`: the resource changed since the client read it.
    Failed,
    /// `428 Precondition Required`: the route demands `If-Match` or `If-Unmodified-Since`
    /// ([`RequirePreconditionsLayer`]).
    Required,
    /// `400 Bad Request`: the named field is not well formed.
    Malformed {
        /// The field's name.
        header: &'static str,
    },
}

impl PreconditionError {
    /// The status code of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            PreconditionError::Failed => StatusCode::PRECONDITION_FAILED,
            PreconditionError::Required => StatusCode::PRECONDITION_REQUIRED,
            PreconditionError::Malformed { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// The problem details document of the response.
    pub fn to_problem(&self) -> Problem {
        match self {
            PreconditionError::Failed => Problem::new(StatusCode::PRECONDITION_FAILED).with_detail(
                "the resource has changed since the version named in If-Match or \
                     If-Unmodified-Since; fetch it again and retry",
            ),
            PreconditionError::Required => Problem::new(StatusCode::PRECONDITION_REQUIRED)
                .with_detail(
                    "this request must be conditional: send If-Match with the ETag of the \
                     version it changes",
                ),
            PreconditionError::Malformed { header } => {
                Problem::bad_request(format!("{header} is not a list of entity tags"))
                    .with_invalid_param(header, "expected \"*\" or entity tags such as \"v1\"")
            }
        }
    }
}

impl fmt::Display for PreconditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreconditionError::Failed => f.write_str("precondition failed"),
            PreconditionError::Required => f.write_str("precondition required"),
            PreconditionError::Malformed { header } => write!(f, "malformed {header}"),
        }
    }
}

impl std::error::Error for PreconditionError {}

impl IntoResponse for PreconditionError {
    fn into_response(self) -> axum_core::response::Response {
        self.to_problem().into_response()
    }
}

/// Answers `428 Precondition Required` (RFC 6585, `application/problem+json`) to a write
/// that carries neither `If-Match` nor a valid `If-Unmodified-Since`, without calling the
/// inner service: on a route that has it, a client cannot overwrite what it has not read.
/// The methods it applies to are `PUT`, `PATCH` and `DELETE` by default; every other
/// request passes through untouched. It checks presence only; the handler compares with
/// [`Preconditions::check`].
///
/// ```
/// use axum::{Router, http::StatusCode, routing::put};
/// use towerkit_validators::RequirePreconditionsLayer;
/// # use tower::ServiceExt;
///
/// let app: Router = Router::new()
///     .route("/items/1", put(|| async { StatusCode::NO_CONTENT }))
///     .route_layer(RequirePreconditionsLayer::new());
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let blind = http::Request::put("/items/1").body(axum::body::Body::empty()).unwrap();
/// assert_eq!(app.oneshot(blind).await.unwrap().status(), StatusCode::PRECONDITION_REQUIRED);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct RequirePreconditionsLayer {
    methods: Vec<Method>,
}

impl RequirePreconditionsLayer {
    /// A layer that demands a precondition of `PUT`, `PATCH` and `DELETE`.
    pub fn new() -> Self {
        Self {
            methods: vec![Method::PUT, Method::PATCH, Method::DELETE],
        }
    }

    /// The methods that must be conditional (default `PUT`, `PATCH`, `DELETE`).
    #[must_use]
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }
}

impl Default for RequirePreconditionsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for RequirePreconditionsLayer {
    type Service = RequirePreconditions<S>;

    fn layer(&self, inner: S) -> RequirePreconditions<S> {
        RequirePreconditions {
            inner,
            methods: self.methods.clone(),
        }
    }
}

/// The service produced by [`RequirePreconditionsLayer`].
#[derive(Debug, Clone)]
pub struct RequirePreconditions<S> {
    inner: S,
    methods: Vec<Method>,
}

impl<S> RequirePreconditions<S> {
    towerkit_http::inner_accessors!(S);
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequirePreconditions<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<JsonBody<ResBody>>;
    type Error = S::Error;
    type Future = RequireFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let demanded = self.methods.contains(request.method());
        if demanded && !Preconditions::from_headers(request.headers()).is_present() {
            return RequireFuture {
                state: RequireState::Refused {
                    response: Some(PreconditionError::Required.to_problem()),
                },
            };
        }
        RequireFuture {
            state: RequireState::Inner {
                future: self.inner.call(request),
            },
        }
    }
}

pin_project! {
    /// The response future of [`RequirePreconditions`].
    pub struct RequireFuture<F> {
        #[pin]
        state: RequireState<F>,
    }
}

pin_project! {
    #[project = RequireStateProj]
    enum RequireState<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Problem> },
    }
}

impl<F> fmt::Debug for RequireFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            RequireState::Inner { .. } => "Inner",
            RequireState::Refused { .. } => "Refused",
        };
        f.debug_tuple("RequireFuture").field(&state).finish()
    }
}

impl<F, B, E> Future for RequireFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<JsonBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            RequireStateProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(JsonBody::passthrough)))
            }
            RequireStateProj::Refused { response } => {
                let problem = response
                    .take()
                    .unwrap_or_else(|| PreconditionError::Required.to_problem());
                Poll::Ready(Ok(problem.into_http_response().map(JsonBody::full)))
            }
        }
    }
}

/// Seconds since the epoch: HTTP dates have a resolution of one second, so a modification
/// later within the same second as the client's date is not later.
fn whole_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
