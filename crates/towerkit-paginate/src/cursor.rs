//! Opaque keyset cursors: base64url, HMAC-signed, bound to the request's filter and sort.
//!
//! A cursor is `base64url(version | direction | binding | key | tag)`: `binding` is a
//! SHA-256 fingerprint of the request path and its bound query parameters, `key` the JSON
//! of the item key the page starts after or ends before, and `tag` the first 16 bytes of
//! HMAC-SHA256 over everything before it. A cursor that does not verify, or that was issued
//! for other parameters, is rejected before any of it is used.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use sha2::{Digest, Sha256};

use crate::config::CursorMac;

/// The longest cursor accepted, in characters.
pub(crate) const MAX_CURSOR_LEN: usize = 1024;
/// Length of the fingerprint of the bound request parameters.
pub(crate) const BINDING_LEN: usize = 16;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2 + BINDING_LEN;

/// Which side of the cursor's item the requested page lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// The items after the key (the next page).
    After,
    /// The items before the key (the previous page).
    Before,
}

/// Why a cursor was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CursorError {
    /// Not a cursor this service signed: bad encoding, bad signature, bad layout.
    Invalid,
    /// Signed here, but for another path or other filter and sort parameters.
    OtherQuery,
}

/// Signs a cursor for `key` (JSON) in `direction`, bound to `binding`.
pub(crate) fn seal(
    mac: &CursorMac,
    direction: Direction,
    binding: &[u8; BINDING_LEN],
    key: &[u8],
) -> String {
    let mut payload = Vec::with_capacity(HEADER_LEN + key.len() + TAG_LEN);
    payload.push(VERSION);
    payload.push(match direction {
        Direction::After => b'a',
        Direction::Before => b'b',
    });
    payload.extend_from_slice(binding);
    payload.extend_from_slice(key);
    let tag = mac.clone().chain_update(&payload).finalize().into_bytes();
    payload.extend_from_slice(&tag[..TAG_LEN]);
    URL_SAFE_NO_PAD.encode(payload)
}

/// Verifies `token` and returns its direction and key (JSON bytes).
pub(crate) fn open(
    mac: &CursorMac,
    token: &str,
    binding: &[u8; BINDING_LEN],
) -> Result<(Direction, Vec<u8>), CursorError> {
    if token.len() > MAX_CURSOR_LEN {
        return Err(CursorError::Invalid);
    }
    let mut bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| CursorError::Invalid)?;
    if bytes.len() < HEADER_LEN + TAG_LEN {
        return Err(CursorError::Invalid);
    }
    let tag = bytes.split_off(bytes.len() - TAG_LEN);
    mac.clone()
        .chain_update(&bytes)
        .verify_truncated_left(&tag)
        .map_err(|_| CursorError::Invalid)?;
    let direction = match (bytes[0], bytes[1]) {
        (VERSION, b'a') => Direction::After,
        (VERSION, b'b') => Direction::Before,
        _ => return Err(CursorError::Invalid),
    };
    if bytes[2..HEADER_LEN] != binding[..] {
        return Err(CursorError::OtherQuery);
    }
    Ok((direction, bytes.split_off(HEADER_LEN)))
}

/// The fingerprint of what a cursor is bound to: the path and the bound query parameters,
/// in order of name (the relative order of repeated names is kept: it can matter for sorts).
pub(crate) fn binding(
    path: &str,
    params: &mut [(Cow<'_, str>, Cow<'_, str>)],
) -> [u8; BINDING_LEN] {
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hash = Sha256::new();
    hash.update(b"towerkit-paginate cursor binding v1\0");
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field(path.as_bytes());
    for (name, value) in params.iter() {
        field(name.as_bytes());
        field(value.as_bytes());
    }
    let digest = hash.finalize();
    let mut out = [0u8; BINDING_LEN];
    out.copy_from_slice(&digest[..BINDING_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use hmac::KeyInit;

    use super::*;

    fn mac(key: u8) -> CursorMac {
        CursorMac::new_from_slice(&[key; 32]).unwrap()
    }

    fn bind(path: &str, params: &[(&str, &str)]) -> [u8; BINDING_LEN] {
        let mut params: Vec<_> = params
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v)))
            .collect();
        binding(path, &mut params)
    }

    #[test]
    fn cursor_round_trips() {
        let binding = bind("/items", &[("sort", "name")]);
        let token = seal(&mac(1), Direction::Before, &binding, br#"["Kaffee",42]"#);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
        assert_eq!(
            open(&mac(1), &token, &binding),
            Ok((Direction::Before, br#"["Kaffee",42]"#.to_vec()))
        );
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let binding = bind("/items", &[]);
        let token = seal(&mac(1), Direction::After, &binding, b"17");
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for index in 0..bytes.len() {
            for bit in 0..8 {
                let mut tampered = bytes.clone();
                tampered[index] ^= 1 << bit;
                let tampered = URL_SAFE_NO_PAD.encode(tampered);
                assert_eq!(
                    open(&mac(1), &tampered, &binding),
                    Err(CursorError::Invalid),
                    "byte {index} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn other_keys_and_garbage_are_invalid() {
        let binding = bind("/items", &[]);
        let token = seal(&mac(1), Direction::After, &binding, b"17");
        assert_eq!(open(&mac(2), &token, &binding), Err(CursorError::Invalid));
        for garbage in ["", "abc", "!!!!", "AAAA", &"A".repeat(MAX_CURSOR_LEN + 4)] {
            assert_eq!(
                open(&mac(1), garbage, &binding),
                Err(CursorError::Invalid),
                "{garbage}"
            );
        }
    }

    #[test]
    fn cursor_for_other_parameters_is_other_query() {
        let issued = bind("/items", &[("category", "3"), ("sort", "price")]);
        let token = seal(&mac(1), Direction::After, &issued, b"17");
        for other in [
            bind("/items", &[("category", "4"), ("sort", "price")]),
            bind("/items", &[("sort", "price")]),
            bind("/orders", &[("category", "3"), ("sort", "price")]),
        ] {
            assert_eq!(open(&mac(1), &token, &other), Err(CursorError::OtherQuery));
        }
        let reordered = bind("/items", &[("sort", "price"), ("category", "3")]);
        assert_eq!(
            open(&mac(1), &token, &reordered),
            Ok((Direction::After, b"17".to_vec()))
        );
    }

    #[test]
    fn binding_keeps_the_order_of_repeated_parameters() {
        assert_ne!(
            bind("/", &[("sort", "a"), ("sort", "b")]),
            bind("/", &[("sort", "b"), ("sort", "a")])
        );
        // Length prefixes keep ("ab", "c") apart from ("a", "bc").
        assert_ne!(bind("/", &[("ab", "c")]), bind("/", &[("a", "bc")]));
    }
}
