//! fabgate: runs a FabLab from one Raspberry Pi. This crate root wires the modules; the
//! binary in `main.rs` only parses the command line.
//!
//! Dependency direction: `config` ← `store` ← `lab` ← {`terminals`, `readers`, `jobs`, `cli`};
//! `broker` moves bytes and knows no rules; `daemon` builds them all.

pub mod broker;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod health;
pub mod jobs;
pub mod lab;
pub mod logging;
pub mod metrics;
pub mod passwords;
pub mod readers;
pub mod store;
pub mod sync;
pub mod terminals;
pub mod validate;
pub mod watchdog;
pub mod web;
