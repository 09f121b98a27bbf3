//! Leases on Redis: a key with a random token (`SET … NX PX`), renewed and released only by
//! its holder (compare-and-delete in a script), outcomes announced on the lease channel.
//! The lease, the hit-for-miss mark and the entry share their hash tag (`keys.rs`), so each
//! script touches one slot of a cluster.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;

use super::RedisStore;
use super::pubsub::encode_lease;
use crate::store::{Claim, LeaseEnd, LeaseToken, Leases, StoreFuture};

/// Takes the lease unless the key is marked hit-for-miss or the lease is held.
/// `KEYS`: lease, mark; `ARGV`: token, TTL (ms). Returns 1 (taken), 0 (held), 2 (pass).
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0",
    )
});

/// Extends the lease if the token holds it. `KEYS`: lease; `ARGV`: token, TTL (ms).
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0",
    )
});

/// Marks the key hit-for-miss (if asked), deletes the lease if the token holds it, and
/// announces the end. `KEYS`: lease, mark; `ARGV`: token, mark TTL (ms, 0 for none),
/// channel, message.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
local held = redis.call('GET', KEYS[1]) == ARGV[1]
if held then redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[3], ARGV[4])
if held then return 1 end
return 0",
    )
});

/// How often a waiter checks that the lease is still held: rarely while the subscription
/// announces ends, often while it does not.
const POLL_SUBSCRIBED: Duration = Duration::from_millis(250);
const POLL_UNSUBSCRIBED: Duration = Duration::from_millis(25);

/// 128 random bits from the operating system, in hex.
pub(super) fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: fall back to what differs between processes and calls.
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes = (nanos ^ (u128::from(std::process::id()) << 96) ^ (u128::from(calls) << 64))
            .to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Leases for RedisStore {
    fn claim(&self, key: &str, ttl: Duration) -> StoreFuture<Claim> {
        let store = self.clone();
        let keys = &self.inner.keys;
        let (lease, pass) = (keys.lease(key), keys.pass(key));
        StoreFuture::pending(async move {
            let token = LeaseToken::new(random_hex());
            let mut invocation = CLAIM.key(&lease);
            invocation.key(pass).arg(token.as_str()).arg(millis(ttl));
            let code: i64 = store
                .run(
                    "lease",
                    &lease,
                    store.inner.conn.script(&lease, &invocation),
                )
                .await?;
            Ok(match code {
                1 => Claim::Lead(token),
                2 => Claim::Pass,
                _ => Claim::Held,
            })
        })
    }

    fn renew(&self, key: &str, token: &LeaseToken, ttl: Duration) -> StoreFuture<bool> {
        let store = self.clone();
        let lease = self.inner.keys.lease(key);
        let mut invocation = RENEW.key(&lease);
        invocation.arg(token.as_str()).arg(millis(ttl));
        StoreFuture::pending(async move {
            let renewed: i64 = store
                .run(
                    "lease",
                    &lease,
                    store.inner.conn.script(&lease, &invocation),
                )
                .await?;
            Ok(renewed == 1)
        })
    }

    fn release(
        &self,
        key: &str,
        token: &LeaseToken,
        end: LeaseEnd,
        pass_for: Duration,
    ) -> StoreFuture<()> {
        let store = self.clone();
        let keys = &self.inner.keys;
        let pass_ms = if end == LeaseEnd::NotStorable {
            millis(pass_for)
        } else {
            0
        };
        let lease = keys.lease(key);
        let mut invocation = RELEASE.key(&lease);
        invocation
            .key(keys.pass(key))
            .arg(token.as_str())
            .arg(pass_ms)
            .arg(keys.lease_channel())
            .arg(encode_lease(
                end,
                self.inner.subscription.notices.origin(),
                key,
            ));
        StoreFuture::pending(async move {
            let _: i64 = store
                .run(
                    "lease",
                    &lease,
                    store.inner.conn.script(&lease, &invocation),
                )
                .await?;
            Ok(())
        })
    }

    fn wait(&self, key: &str) -> StoreFuture<Option<LeaseEnd>> {
        let store = self.clone();
        let lease = self.inner.keys.lease(key);
        // Listen before looking, so that an end announced in between is not missed.
        let mut listener = self.inner.subscription.notices.listen(key);
        StoreFuture::pending(async move {
            let exists = redis::cmd("EXISTS").arg(&lease).to_owned();
            loop {
                if let Some(end) = listener.current() {
                    return Ok(Some(end));
                }
                let held: i64 = store
                    .run("lease", &lease, store.inner.conn.query(&lease, &exists))
                    .await?;
                if held == 0 {
                    return Ok(listener.current());
                }
                let poll = if store.inner.subscription.notices.subscribed() {
                    POLL_SUBSCRIBED
                } else {
                    POLL_UNSUBSCRIBED
                };
                tokio::select! {
                    end = listener.announced() => return Ok(Some(end)),
                    () = tokio::time::sleep(poll) => {}
                }
            }
        })
    }
}

impl RedisStore {
    /// The store as leases, for [`Store::leases`](crate::store::Store::leases).
    pub(crate) fn as_leases(&self) -> Arc<dyn Leases> {
        Arc::new(self.clone())
    }
}
