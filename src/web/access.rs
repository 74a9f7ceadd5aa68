//! Who may do what: the panel's capabilities and the one table that says, for every URL
//! and method, which capability it needs. `routes` asks `need` before it hands a request
//! to a page, and refuses everything the table does not list, so a page added without a
//! line here is a 404, never an open door. The coming REST API and member portal are to
//! use the same table and the same `allows`.

use serde::Serialize;

/// What a panel role allows, each level including the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Capability {
    /// Read-only: the dashboard, machines, maintenance and who is in (a wall or desk screen).
    Viewer = 1,
    /// The lab's daily work: members, cards, authorizations, machines, uses, maintenance,
    /// the building register, exports.
    Staff = 2,
    /// Settings, email, roles and their rights, backups, other staff's passwords, the
    /// outbox, the wall screen's secret.
    Administrator = 3,
}

impl Capability {
    /// From `roles.panel_level` (0 = no panel).
    pub fn from_level(level: i64) -> Option<Capability> {
        match level {
            1 => Some(Capability::Viewer),
            2 => Some(Capability::Staff),
            l if l >= 3 => Some(Capability::Administrator),
            _ => None,
        }
    }

    pub fn level(self) -> i64 {
        self as i64
    }

    pub fn name(self) -> &'static str {
        match self {
            Capability::Viewer => "viewer",
            Capability::Staff => "staff",
            Capability::Administrator => "administrator",
        }
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Need {
    /// Anyone: the login, assets, and links that carry their own secret.
    Public,
    /// Any logged-in panel user, about themselves (log out, own password, own language).
    Session,
    /// A session whose role has at least this capability.
    At(Capability),
}

impl Need {
    /// May someone with capability `cap` (None = not logged in) go through?
    pub fn allows(self, cap: Option<Capability>) -> bool {
        match self {
            Need::Public => true,
            Need::Session => cap.is_some(),
            Need::At(c) => cap.is_some_and(|have| have >= c),
        }
    }
}

/// One line of the table: `path` segments with `*` for an id or file name.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub need: Need,
}

const fn r(method: &'static str, path: &'static str, need: Need) -> Route {
    Route { method, path, need }
}

use Capability::{Administrator as A, Staff as S, Viewer as V};
use Need::{At, Public as P, Session as SESSION};

/// Every URL of the panel.
pub const ROUTES: &[Route] = &[
    r("GET", "/assets/style.css", P),
    r("GET", "/assets/live.js", P),
    r("GET", "/assets/icon.svg", P),
    r("GET", "/favicon.ico", P),
    r("GET", "/login", P),
    r("POST", "/login", P),
    r("GET", "/password/forgot", P),
    r("POST", "/password/forgot", P),
    r("GET", "/password/reset/*", P),
    r("POST", "/password/reset/*", P),
    r("GET", "/wall/*", P),
    r("GET", "/in/*", P),
    r("POST", "/in/*", P),
    // Oneself.
    r("POST", "/logout", SESSION),
    r("GET", "/password", SESSION),
    r("POST", "/password", SESSION),
    r("GET", "/settings", SESSION),
    r("POST", "/settings/language", SESSION),
    // Read-only screens.
    r("GET", "/", At(V)),
    r("GET", "/dashboard/cards", At(V)),
    r("GET", "/events", At(V)),
    r("GET", "/presence", At(V)),
    r("GET", "/machines", At(V)),
    r("GET", "/machines/*", At(V)),
    r("GET", "/maintenance", At(V)),
    // Members, cards, authorizations.
    r("GET", "/members", At(S)),
    r("GET", "/members/new", At(S)),
    r("POST", "/members/new", At(S)),
    r("GET", "/members/*", At(S)),
    r("GET", "/members/*/edit", At(S)),
    r("POST", "/members/*/edit", At(S)),
    r("POST", "/members/*/disable", At(S)),
    r("POST", "/members/*/enable", At(S)),
    r("GET", "/members/*/delete", At(S)),
    r("POST", "/members/*/delete", At(S)),
    r("POST", "/members/*/password", At(A)),
    r("GET", "/authorizations", At(S)),
    r("POST", "/authorizations/grant", At(S)),
    r("POST", "/authorizations/revoke", At(S)),
    r("GET", "/authorizations/bulk", At(S)),
    r("POST", "/authorizations/bulk", At(S)),
    r("GET", "/unknown-cards", At(S)),
    // Roles and what they allow.
    r("GET", "/roles", At(A)),
    r("GET", "/roles/new", At(A)),
    r("POST", "/roles/new", At(A)),
    r("GET", "/roles/*/edit", At(A)),
    r("POST", "/roles/*/edit", At(A)),
    r("GET", "/roles/*/delete", At(A)),
    r("POST", "/roles/*/delete", At(A)),
    // Machines and their types.
    r("GET", "/machines/new", At(S)),
    r("POST", "/machines", At(S)),
    r("GET", "/machines/*/edit", At(S)),
    r("POST", "/machines/*/edit", At(S)),
    r("GET", "/machines/*/delete", At(S)),
    r("POST", "/machines/*/delete", At(S)),
    r("POST", "/machines/*/block", At(S)),
    r("POST", "/machines/*/unblock", At(S)),
    r("POST", "/machines/*/start", At(S)),
    r("POST", "/machines/*/stop", At(S)),
    r("GET", "/machine-types", At(S)),
    r("GET", "/machine-types/new", At(S)),
    r("POST", "/machine-types", At(S)),
    r("GET", "/machine-types/*/edit", At(S)),
    r("POST", "/machine-types/*/edit", At(S)),
    r("GET", "/machine-types/*/delete", At(S)),
    r("POST", "/machine-types/*/delete", At(S)),
    // Maintenance.
    r("GET", "/maintenance/plans/new", At(S)),
    r("POST", "/maintenance/plans", At(S)),
    r("GET", "/maintenance/plans/*/edit", At(S)),
    r("POST", "/maintenance/plans/*/edit", At(S)),
    r("GET", "/maintenance/plans/*/delete", At(S)),
    r("POST", "/maintenance/plans/*/delete", At(S)),
    r("GET", "/maintenance/interventions/new", At(S)),
    r("POST", "/maintenance/interventions", At(S)),
    r("GET", "/maintenance/interventions/*/edit", At(S)),
    r("POST", "/maintenance/interventions/*/edit", At(S)),
    r("GET", "/maintenance/interventions/*/delete", At(S)),
    r("POST", "/maintenance/interventions/*/delete", At(S)),
    // Uses and exports.
    r("GET", "/uses", At(S)),
    r("GET", "/uses/new", At(S)),
    r("POST", "/uses", At(S)),
    r("GET", "/uses/*/edit", At(S)),
    r("POST", "/uses/*/edit", At(S)),
    r("GET", "/uses/*/delete", At(S)),
    r("POST", "/uses/*/delete", At(S)),
    r("GET", "/exports", At(S)),
    r("GET", "/exports/*", At(S)),
    // The building register.
    r("GET", "/presence/export.csv", At(S)),
    r("POST", "/presence/sign-in", At(S)),
    r("POST", "/presence/sign-out", At(S)),
    r("POST", "/presence/link", At(S)),
    r("POST", "/presence/wall", At(A)),
    // The system.
    r("GET", "/system", At(S)),
    r("GET", "/boards", At(S)),
    r("GET", "/backup", At(A)),
    r("POST", "/settings", At(A)),
    r("POST", "/settings/email", At(A)),
    r("GET", "/outbox", At(A)),
    r("POST", "/outbox/*/retry", At(A)),
    r("POST", "/outbox/*/discard", At(A)),
];

/// What `method` on `path` needs; `None` when no route matches (a 404). A literal segment
/// wins over `*` (`/machines/new` is not machine "new").
pub fn need(method: &str, path: &str) -> Option<Need> {
    let method = if method == "HEAD" { "GET" } else { method };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut best: Option<(usize, Need)> = None;
    for route in ROUTES.iter().filter(|r| r.method == method) {
        let pattern: Vec<&str> = route.path.split('/').filter(|s| !s.is_empty()).collect();
        if pattern.len() != segs.len() {
            continue;
        }
        let mut literal = 0;
        let fits = pattern.iter().zip(&segs).all(|(p, s)| {
            if *p == "*" {
                !s.is_empty()
            } else {
                literal += 1;
                p == s
            }
        });
        if fits && best.is_none_or(|(l, _)| literal > l) {
            best = Some((literal, route.need));
        }
    }
    best.map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_and_unknown_paths_match_nothing() {
        assert_eq!(need("GET", "/machines/new"), Some(At(S)));
        assert_eq!(need("GET", "/machines/3"), Some(At(V)));
        assert_eq!(need("HEAD", "/"), Some(At(V)));
        assert_eq!(need("POST", "/members/3/password"), Some(At(A)));
        assert_eq!(need("GET", "/nowhere"), None);
        assert_eq!(need("DELETE", "/members/3"), None);
    }

    #[test]
    fn capabilities_include_the_lower_ones() {
        assert!(At(S).allows(Some(A)));
        assert!(!At(A).allows(Some(S)));
        assert!(!At(V).allows(None));
        assert!(Need::Session.allows(Some(V)));
        assert!(P.allows(None));
    }

    #[test]
    fn every_route_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(seen.insert((r.method, r.path)), "{} {}", r.method, r.path);
        }
    }
}
