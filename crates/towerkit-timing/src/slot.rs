//! The slot of a small direct-mapped cache: the per-thread recent series
//! ([`Series::with`](crate::http)) and recent query labels both pick theirs from addresses.

/// The slot, out of `slots` (a power of two), for `mixed` (addresses combined by the
/// caller): a Fibonacci hash, whose top bits spread nearby addresses (allocations a few
/// bytes apart) over the slots.
pub(crate) fn by_address(mixed: usize, slots: usize) -> usize {
    debug_assert!(slots.is_power_of_two());
    let bits = slots.trailing_zeros();
    if bits == 0 {
        return 0;
    }
    let product = (mixed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (product >> (64 - bits)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbouring_addresses_spread_over_every_slot() {
        let mut used = [0_u32; 8];
        for address in (0x5555_0000_usize..).step_by(16).take(64) {
            used[by_address(address, used.len())] += 1;
        }
        assert!(used.iter().all(|&n| (4..=12).contains(&n)), "{used:?}");
        assert_eq!(by_address(0x5555_0000, 1), 0);
    }
}
