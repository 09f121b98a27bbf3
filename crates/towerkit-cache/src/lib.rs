//! towerkit-cache
