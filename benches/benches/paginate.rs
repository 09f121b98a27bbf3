//! Benches for towerkit-paginate (being written).

fn main() {}
