use std::collections::{HashMap, HashSet, VecDeque};

use super::{
    scheduler::{PauseReason, Tracker},
    ConnectionEvents,
};

/// fabgate patch: bounded. Upstream kept an entry (at least the metrics) for every
/// client id ever seen, so a client cycling random ids grew the router without end.
pub struct Graveyard {
    connections: HashMap<String, SavedState>,
    /// Saved ids, oldest first (may hold ids already retrieved; skipped when evicting).
    order: VecDeque<String>,
    limit: usize,
}

impl Graveyard {
    pub fn new(limit: usize) -> Graveyard {
        Graveyard {
            connections: HashMap::new(),
            order: VecDeque::new(),
            limit: if limit == 0 { usize::MAX } else { limit },
        }
    }

    /// Add a new connection.
    /// Return tracker of previous connection if connection id already exists
    pub fn retrieve(&mut self, id: &str) -> Option<SavedState> {
        let saved = self.connections.remove(id);
        if saved.is_some() && self.order.len() > 2 * self.connections.len() + 16 {
            let connections = &self.connections;
            self.order.retain(|id| connections.contains_key(id));
        }
        saved
    }

    /// Save connection tracker
    pub fn save_state(
        &mut self,
        mut tracker: Tracker,
        subscriptions: HashSet<String>,
        metrics: ConnectionEvents,
        unacked_pubrels: VecDeque<u16>,
    ) {
        tracker.pause(PauseReason::Busy);
        let id = tracker.id.clone();

        let session_state = SessionState {
            tracker,
            subscriptions,
            unacked_pubrels,
        };

        while self.connections.len() >= self.limit {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.connections.remove(&oldest);
        }
        if self
            .connections
            .insert(
                id.clone(),
                SavedState {
                    session_state: Some(session_state),
                    metrics,
                },
            )
            .is_none()
        {
            self.order.push_back(id);
        }
    }

    /// fabgate patch: metrics of clean sessions are not kept (they were never freed).
    pub fn save_metrics(&mut self, _id: String, _metrics: ConnectionEvents) {}
}

#[derive(Debug)]
pub struct SavedState {
    pub session_state: Option<SessionState>,
    pub metrics: ConnectionEvents,
}

#[derive(Debug)]
pub struct SessionState {
    pub tracker: Tracker,
    pub subscriptions: HashSet<String>,
    // used for pubrel in qos2
    pub unacked_pubrels: VecDeque<u16>,
}
