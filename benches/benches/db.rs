//! Benches for towerkit-db (being written).

fn main() {}
