//! The compact binary form of an [`Entry`]: [`Entry::encode`] and [`Entry::decode`], which
//! remote stores (Redis) keep entries in and custom stores may use.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::entry::{Entry, Meta, response_head};
use crate::key::VaryRule;

/// Why [`Entry::decode`] rejected its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed cache entry")
    }
}

impl std::error::Error for DecodeError {}

const MAGIC: &[u8; 4] = b"TKC1";

impl Entry {
    /// The entry in a compact binary form: status, timing, `Vary` rules, tags, headers and
    /// body, length-prefixed. [`Entry::decode`] reads it back.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.weight() + 64);
        out.put_slice(MAGIC);
        out.put_u16(self.status.as_u16());
        let meta = &self.meta;
        for value in [
            meta.response_time,
            meta.initial_age,
            meta.lifetime,
            meta.stale_while_revalidate,
            meta.stale_if_error,
            meta.retain_until,
        ] {
            out.put_u64(value);
        }
        out.put_u8(meta.flags);
        put_bytes(&mut out, self.variant.as_bytes());
        out.put_u16(self.vary.len() as u16);
        for rule in &self.vary {
            put_bytes(&mut out, rule.name.as_str().as_bytes());
            match &rule.value {
                Some(value) => {
                    out.put_u8(1);
                    put_bytes(&mut out, value.as_bytes());
                }
                None => out.put_u8(0),
            }
        }
        out.put_u16(self.tags.len() as u16);
        for tag in &self.tags {
            put_bytes(&mut out, tag.as_bytes());
        }
        out.put_u32(self.headers.len() as u32);
        for (name, value) in &self.headers {
            put_bytes(&mut out, name.as_str().as_bytes());
            put_bytes(&mut out, value.as_bytes());
        }
        put_bytes(&mut out, &self.body);
        out.freeze()
    }

    /// Reads an entry written by [`Entry::encode`]. The body shares `input`'s buffer.
    pub fn decode(mut input: Bytes) -> Result<Entry, DecodeError> {
        let buf = &mut input;
        if buf.remaining() < 4 || &buf[..4] != MAGIC {
            return Err(DecodeError);
        }
        buf.advance(4);
        let status = StatusCode::from_u16(get_u16(buf)?).map_err(|_| DecodeError)?;
        let mut times = [0u64; 6];
        for time in &mut times {
            *time = get_u64(buf)?;
        }
        let flags = get_u8(buf)?;
        let [
            response_time,
            initial_age,
            lifetime,
            stale_while_revalidate,
            stale_if_error,
            retain_until,
        ] = times;
        let meta = Meta {
            response_time,
            initial_age,
            lifetime,
            stale_while_revalidate,
            stale_if_error,
            retain_until,
            flags,
        };
        let variant = get_str(buf)?;
        let vary_count = get_u16(buf)?;
        let mut vary = Vec::with_capacity(usize::from(vary_count).min(64));
        for _ in 0..vary_count {
            let name = HeaderName::from_bytes(&get_bytes(buf)?).map_err(|_| DecodeError)?;
            let value = match get_u8(buf)? {
                0 => None,
                _ => Some(get_str(buf)?),
            };
            vary.push(VaryRule { name, value });
        }
        let tag_count = get_u16(buf)?;
        let mut tags = Vec::with_capacity(usize::from(tag_count).min(64));
        for _ in 0..tag_count {
            tags.push(get_str(buf)?);
        }
        let header_count = get_u32(buf)?;
        let mut headers = HeaderMap::with_capacity((header_count as usize).min(256));
        for _ in 0..header_count {
            let name = HeaderName::from_bytes(&get_bytes(buf)?).map_err(|_| DecodeError)?;
            let value = HeaderValue::from_maybe_shared(get_bytes(buf)?).map_err(|_| DecodeError)?;
            headers.append(name, value);
        }
        let body = get_bytes(buf)?;
        if buf.has_remaining() {
            return Err(DecodeError);
        }
        Ok(Entry {
            status,
            head: response_head(&headers),
            headers,
            body,
            meta,
            vary: vary.into_boxed_slice(),
            variant,
            tags: tags.into_boxed_slice(),
        })
    }
}

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
}

fn get_u8(buf: &mut Bytes) -> Result<u8, DecodeError> {
    if buf.remaining() < 1 {
        return Err(DecodeError);
    }
    Ok(buf.get_u8())
}

fn get_u16(buf: &mut Bytes) -> Result<u16, DecodeError> {
    if buf.remaining() < 2 {
        return Err(DecodeError);
    }
    Ok(buf.get_u16())
}

fn get_u32(buf: &mut Bytes) -> Result<u32, DecodeError> {
    if buf.remaining() < 4 {
        return Err(DecodeError);
    }
    Ok(buf.get_u32())
}

fn get_u64(buf: &mut Bytes) -> Result<u64, DecodeError> {
    if buf.remaining() < 8 {
        return Err(DecodeError);
    }
    Ok(buf.get_u64())
}

fn get_bytes(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    let len = get_u32(buf)? as usize;
    if buf.remaining() < len {
        return Err(DecodeError);
    }
    Ok(buf.split_to(len))
}

fn get_str(buf: &mut Bytes) -> Result<Box<str>, DecodeError> {
    let bytes = get_bytes(buf)?;
    std::str::from_utf8(&bytes)
        .map(Into::into)
        .map_err(|_| DecodeError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    fn entry(response: &[(&str, &str)], request: &[(&str, &str)]) -> Entry {
        test_support::entry(response, request, "/p", b"hello")
    }

    #[test]
    fn encoding_round_trips() {
        let original = entry(
            &[
                ("cache-control", "max-age=60, s-maxage=30"),
                ("vary", "accept-encoding, x-tenant"),
                ("x-multi", "1"),
                ("x-multi", "2"),
            ],
            &[("accept-encoding", "gzip"), ("x-tenant", "7")],
        );
        let decoded = Entry::decode(original.encode()).unwrap();
        assert_eq!(decoded.status, original.status);
        assert_eq!(decoded.headers, original.headers);
        assert_eq!(decoded.body, original.body);
        assert_eq!(decoded.meta, original.meta);
        assert_eq!(decoded.vary, original.vary);
        assert_eq!(decoded.variant, original.variant);
        assert_eq!(decoded.tags, original.tags);
    }

    #[test]
    fn truncated_or_foreign_input_is_rejected() {
        let encoded = entry(&[("cache-control", "max-age=60")], &[]).encode();
        for len in [0, 3, 10, encoded.len() - 1] {
            assert_eq!(
                Entry::decode(encoded.slice(..len)).unwrap_err(),
                DecodeError,
                "{len}"
            );
        }
        assert!(Entry::decode(Bytes::from_static(b"[1,2,3]")).is_err());
    }
}
