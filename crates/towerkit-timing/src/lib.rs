//! towerkit-timing
