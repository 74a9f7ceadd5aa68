//! Import of a FabOMatic database (any schema revision).
