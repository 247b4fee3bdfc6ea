//! STOMP frame codec.
