//! Terminals turn a source of card taps and usage events into `lab` calls: a Fab-O-Matic
//! board on MQTT (`fabomatic`), and later readers wired to the Pi.

mod board_link;
mod fabomatic;
pub mod messages;

pub use board_link::{BoardLink, Stats};
pub use fabomatic::{BoardTopic, DropReason, Handled, Protocol};
