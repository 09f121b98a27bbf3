//! Benches for towerkit-compress (being written).

fn main() {}
