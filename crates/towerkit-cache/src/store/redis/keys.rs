//! The store's key layout in Redis.
//!
//! Every Redis key that belongs to one cache key (its entry, its lease, its hit-for-miss
//! mark) carries the same hash tag, `{…}` holding a hash of the cache key, so that on a
//! cluster they live in one slot: a script may touch them together, and MOVED or ASK
//! never separates them. (A prefix containing `{…}` itself puts every key in the prefix's
//! slot instead, which stays correct but spreads nothing.)
//!
//! | key | holds |
//! |---|---|
//! | `{prefix}e:{hash}:{key}` | the entry's hash: one field per variant |
//! | `{prefix}l:{hash}:{key}` | the lease on the key's origin call (a random token) |
//! | `{prefix}p:{hash}:{key}` | hit-for-miss: the key's last response was not storable |
//! | `{prefix}t:{tag}` | the set of keys tagged `tag` |
//!
//! Channels: `{prefix}invalidate` (tiered stores' invalidations) and `{prefix}lease`
//! (lease outcomes).

/// The key and channel names of one store, from its prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: String) -> Self {
        Keys { prefix }
    }

    /// The prefix every key starts with.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hash holding `key`'s variants.
    pub(crate) fn entry(&self, key: &str) -> String {
        self.tagged('e', key)
    }

    /// The lease on `key`'s origin call.
    pub(crate) fn lease(&self, key: &str) -> String {
        self.tagged('l', key)
    }

    /// The hit-for-miss mark of `key`.
    pub(crate) fn pass(&self, key: &str) -> String {
        self.tagged('p', key)
    }

    /// The set of keys tagged `tag`.
    pub(crate) fn tag(&self, tag: &str) -> String {
        format!("{}t:{tag}", self.prefix)
    }

    /// The channel tiered stores publish invalidations on.
    pub(crate) fn invalidation_channel(&self) -> String {
        format!("{}invalidate", self.prefix)
    }

    /// The channel lease outcomes are published on.
    pub(crate) fn lease_channel(&self) -> String {
        format!("{}lease", self.prefix)
    }

    /// A pattern matching every key of the store (for `SCAN … MATCH`).
    pub(crate) fn pattern(&self) -> String {
        format!("{}*", escape_glob(&self.prefix))
    }

    fn tagged(&self, kind: char, key: &str) -> String {
        format!("{}{kind}:{{{:016x}}}:{key}", self.prefix, slot_hash(key))
    }
}

/// FNV-1a (64 bits) of `key`: the same in every process, so that every instance puts a key
/// in the same slot.
fn slot_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The Redis Cluster hash slot of a Redis key: CRC16 (XMODEM) of its hash tag (the text
/// between the first `{` and the next `}`, when not empty) or of the whole key, modulo
/// 16384, as the cluster specification defines it.
#[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
pub(crate) fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = bytes
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &bytes[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(bytes);
    crc16(hashed) % 16384
}

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Escapes the glob characters of a Redis `MATCH` pattern.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_in_prefixes_are_escaped() {
        assert_eq!(escape_glob("app:[x]*?\\"), "app:\\[x\\]\\*\\?\\\\");
        assert_eq!(Keys::new("a*:".into()).pattern(), "a\\*:*");
    }

    #[test]
    fn slots_follow_the_cluster_specification() {
        // The specification's check value, and slots `CLUSTER KEYSLOT` gives.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
        assert_ne!(
            slot("foo{}{bar}"),
            slot("bar"),
            "an empty tag hashes the whole key"
        );
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
        let keys = Keys::new("app:".into());
        assert_eq!(slot(&keys.entry("/a")), slot(&keys.lease("/a")));
    }

    #[test]
    fn a_keys_entry_lease_and_mark_share_one_hash_tag() {
        let keys = Keys::new("app:".into());
        let tag = |name: &str| {
            let open = name.find('{').unwrap();
            let close = name[open..].find('}').unwrap() + open;
            name[open..=close].to_owned()
        };
        let key = "/products?page=1";
        let entry = keys.entry(key);
        assert!(entry.starts_with("app:e:{") && entry.ends_with(":/products?page=1"));
        assert_eq!(tag(&entry), tag(&keys.lease(key)));
        assert_eq!(tag(&entry), tag(&keys.pass(key)));
        assert_ne!(tag(&entry), tag(&keys.entry("/products?page=2")));
        // Known FNV-1a value: stable across processes and releases.
        assert_eq!(slot_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
