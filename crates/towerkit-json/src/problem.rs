//! RFC 9457 problem details: the `application/problem+json` body every towerkit layer uses
//! to tell a client what it got wrong.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Map, Value, json};

/// The media type of a problem details document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem details response.
///
/// ```
/// use towerkit_json::Problem;
///
/// let response = Problem::bad_request("limit must be a positive integer")
///     .with_invalid_param("limit", "expected a positive integer, got \"abc\"")
///     .into_http_response();
/// assert_eq!(response.status(), 400);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
/// assert_eq!(body["invalid-params"][0]["name"], "limit");
/// ```
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    members: Map<String, Value>,
}

impl Problem {
    /// A problem with `status`; its title is the status's reason phrase.
    pub fn new(status: StatusCode) -> Self {
        let mut members = Map::new();
        members.insert("type".into(), Value::from("about:blank"));
        members.insert(
            "title".into(),
            Value::from(status.canonical_reason().unwrap_or("Error")),
        );
        members.insert("status".into(), Value::from(status.as_u16()));
        Self { status, members }
    }

    /// A 400 Bad Request with `detail`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST).with_detail(detail)
    }

    /// Sets the human-readable explanation of this occurrence.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.members
            .insert("detail".into(), Value::from(detail.into()));
        self
    }

    /// Sets the short summary (default: the status's reason phrase).
    #[must_use]
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.members
            .insert("title".into(), Value::from(title.into()));
        self
    }

    /// Sets the problem type URI (default `about:blank`).
    #[must_use]
    pub fn with_type(mut self, uri: impl Into<String>) -> Self {
        self.members.insert("type".into(), Value::from(uri.into()));
        self
    }

    /// Names a request parameter (query parameter, header or body field) and why it was
    /// rejected, in an `invalid-params` list as in RFC 9457's example.
    #[must_use]
    pub fn with_invalid_param(mut self, name: &str, reason: impl Into<String>) -> Self {
        let entry = json!({ "name": name, "reason": reason.into() });
        match self.members.get_mut("invalid-params") {
            Some(Value::Array(list)) => list.push(entry),
            _ => {
                self.members
                    .insert("invalid-params".into(), Value::Array(vec![entry]));
            }
        }
        self
    }

    /// Adds an extension member.
    #[must_use]
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.members.insert(name.into(), value.into());
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The document's members.
    pub fn members(&self) -> &Map<String, Value> {
        &self.members
    }

    /// The serialized document.
    pub fn to_bytes(&self) -> Bytes {
        serde_json::to_vec(&self.members).unwrap_or_default().into()
    }

    /// A response with the status, `Content-Type: application/problem+json` and the document,
    /// for any `http`-based stack. With the `axum` feature, `Problem` is also an axum
    /// `IntoResponse`.
    pub fn into_http_response(self) -> Response<Bytes> {
        let mut response = Response::new(self.to_bytes());
        *response.status_mut() = self.status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

/// Available with the `axum` feature.
#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for Problem {
    fn into_response(self) -> axum_core::response::Response {
        self.into_http_response().map(axum_core::body::Body::from)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let detail = self.members.get("detail").and_then(Value::as_str);
        match detail {
            Some(detail) => write!(f, "{}: {detail}", self.status),
            None => write!(f, "{}", self.status),
        }
    }
}

impl std::error::Error for Problem {}
