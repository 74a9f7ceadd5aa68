//! One integration binary (linked once on the 2-core CI). Every test starts the real
//! daemon binary on free ports with its own SQLite file and talks to it as boards do,
//! or runs the real CLI against the same kind of lab.

mod appliance;
mod broker_acl;
mod broker_crash;
mod broker_limits;
mod broker_mqtt;
mod browser;
mod calendar;
mod cli;
mod common;
mod conformance;
mod data;
mod faults;
mod import;
mod offline;
mod package;
mod panel;
mod panel_people;
mod panel_presence;
mod panel_security;
mod panel_security_floods;
mod panel_security_front;
mod panel_security_hygiene;
mod panel_security_login;
mod panel_security_secrets;
mod panel_workshop;
mod readers;
mod safety_clock;
mod safety_faults;
mod safety_sessions;
mod safety_start;
mod secrets;
mod startup;
mod sync;
mod sync_tls;
mod webhooks;
mod weekly;
