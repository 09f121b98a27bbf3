//! towerkit-db
