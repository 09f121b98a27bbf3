//! towerkit-paginate
