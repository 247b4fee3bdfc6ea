//! STOMP 1.0–1.2.
pub mod stomp;
