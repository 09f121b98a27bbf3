//! Benches for towerkit-cache (being written).

fn main() {}
