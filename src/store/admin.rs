//! Queries for administration (CLI now, panel later): listing and changing members, roles,
//! machine types, machines, authorizations, plans, credentials.
