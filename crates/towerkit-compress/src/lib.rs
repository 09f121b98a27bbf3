//! towerkit-compress
