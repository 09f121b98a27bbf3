//! Where entries live: the [`Store`] trait (in `contract.rs`), its implementations, and the
//! binary entry codec.

mod codec;
mod contract;
mod lease;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod tiered;

pub use codec::DecodeError;
pub use contract::{Lookup, Store, StoreError, StoreFuture, StoreStats, Tier, Variants};
pub use lease::{Claim, LeaseEnd, LeaseToken, Leases};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::{RedisNode, RedisStore, RedisStoreBuilder};
#[cfg(feature = "redis")]
pub use tiered::TieredStore;
