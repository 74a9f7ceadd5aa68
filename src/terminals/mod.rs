//! Terminals turn a source of card taps and usage events into `lab` calls: a Fab-O-Matic
//! board on MQTT (`fabomatic`), and a reader wired to the Pi playing a machine's board
//! (`local`).

mod board_link;
mod fabomatic;
mod local;
pub mod messages;

pub use local::{LocalBoard, Session, Step};

pub use board_link::{BoardLink, Stats};
pub use fabomatic::{BoardTopic, DropReason, Handled, Protocol};
