//! Writes need `Authorization: Bearer <token>`, with a token from `API_TOKENS`.
//!
//! Several tokens may be valid at once, so a token can be rotated: add the new one, move the
//! clients, remove the old one. Tokens are compared in constant time: tower-http's
//! `ValidateRequestHeaderLayer::bearer` compares with `==`, which returns at the first
//! differing byte and so tells a patient attacker, through timing, how much of a guess was
//! right. Here both sides are hashed with SHA-256 first (so the comparison takes the same
//! time whatever the lengths) and every byte of every configured digest is compared, without
//! an early exit. The `subtle` crate would do the byte comparison too; it is not among the
//! workspace's dependencies, and 32 bytes folded with XOR do not justify adding one.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use towerkit::json::Problem;

/// The shortest token `API_TOKENS` accepts: shorter ones can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// The bearer tokens that may write, kept only as SHA-256 digests. `Debug` shows how many
/// there are, never the tokens.
#[derive(Clone, Default)]
pub struct ApiTokens {
    digests: Arc<[[u8; 32]]>,
}

/// A token in `API_TOKENS` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// The token's position in the list, from 1.
    pub position: usize,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "API_TOKENS: token {} is shorter than {MIN_TOKEN_LEN} characters",
            self.position
        )
    }
}

impl std::error::Error for TokenError {}

impl ApiTokens {
    /// Tokens from a comma-separated list (`API_TOKENS=new-token,old-token`); spaces around
    /// each token and empty entries are ignored. An empty list refuses every write.
    pub fn parse(list: &str) -> Result<Self, TokenError> {
        let mut digests = Vec::new();
        for (index, token) in list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            if token.len() < MIN_TOKEN_LEN {
                return Err(TokenError {
                    position: index + 1,
                });
            }
            digests.push(digest(token.as_bytes()));
        }
        Ok(ApiTokens {
            digests: digests.into(),
        })
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether no token is configured (then every write is refused).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the tokens, in time that depends only on how many
    /// tokens are configured.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let presented = digest(presented);
        let mut matched = 0u8;
        for stored in self.digests.iter() {
            matched |= u8::from(constant_time_eq(stored, &presented));
        }
        matched == 1
    }
}

impl fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiTokens({} configured)", self.digests.len())
    }
}

/// Middleware for the write routes: passes requests with an accepted bearer token on, and
/// answers the others with `401` problem+json and `WWW-Authenticate: Bearer`.
pub async fn require_bearer(
    State(tokens): State<ApiTokens>,
    request: Request,
    next: Next,
) -> Response {
    match bearer(&request) {
        Some(token) if tokens.accepts(token) => next.run(request).await,
        // RFC 6750 §3: no credentials get a bare challenge, wrong ones an error code.
        Some(_) => unauthorized(
            "the bearer token is not valid",
            r#"Bearer realm="api", error="invalid_token""#,
        ),
        None => unauthorized(
            "writes need an `Authorization: Bearer <token>` header",
            r#"Bearer realm="api""#,
        ),
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer(request: &Request) -> Option<&[u8]> {
    let value = request.headers().get(AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn unauthorized(detail: &str, challenge: &'static str) -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED)
        .with_detail(detail)
        .into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compares every byte, without returning early; `black_box` keeps the optimiser from
/// turning the fold back into an early-exit comparison.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        difference |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "first-token-0123456789";
    const TWO: &str = "second-token-0123456789";

    #[test]
    fn every_listed_token_is_accepted_and_nothing_else() {
        let tokens = ApiTokens::parse(&format!(" {ONE} ,, {TWO} ")).unwrap();
        assert_eq!(tokens.len(), 2);
        assert!(tokens.accepts(ONE.as_bytes()));
        assert!(tokens.accepts(TWO.as_bytes()));
        for wrong in [
            "",
            "first-token",
            "first-token-01234567890",
            "FIRST-TOKEN-0123456789",
        ] {
            assert!(!tokens.accepts(wrong.as_bytes()), "{wrong}");
        }
    }

    #[test]
    fn no_tokens_accept_nothing() {
        let tokens = ApiTokens::parse("").unwrap();
        assert!(tokens.is_empty());
        assert!(!tokens.accepts(b""));
        assert!(!tokens.accepts(ONE.as_bytes()));
    }

    #[test]
    fn short_tokens_are_refused_by_position() {
        let error = ApiTokens::parse(&format!("{ONE},tiny")).unwrap_err();
        assert_eq!(error.position, 2);
        assert!(!error.to_string().contains("tiny"), "{error}");
    }

    #[test]
    fn debug_shows_the_count_only() {
        let tokens = ApiTokens::parse(ONE).unwrap();
        assert_eq!(format!("{tokens:?}"), "ApiTokens(1 configured)");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let request = |value: &str| {
            Request::builder()
                .header(AUTHORIZATION, value)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_eq!(bearer(&request("bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer(&request("Bearer  abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer(&request("Basic abc")), None);
        assert_eq!(bearer(&request("Bearer ")), None);
    }
}
