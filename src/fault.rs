//! Test-only fault hooks (the `fault-injection` feature; absent from a normal build).
//! Each is armed by an environment variable of the broker process, so a test can make
//! one real broker fail in one precise way.
//!
//! * `TANDEM_FAULT_PANIC_ON_DESTINATION=/queue/NAME`: the shard that stores a message
//!   sent to that destination panics while handling it, as a bug in the broker core
//!   would (see `node`: the node must then stop, not serve with a dead shard).

use std::sync::OnceLock;

/// Panics if `destination` (STOMP spelling) is the one the environment names.
pub fn panic_if_armed(destination: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("TANDEM_FAULT_PANIC_ON_DESTINATION").ok());
    if armed.as_deref() == Some(destination) {
        panic!("fault injection: a send to {destination} panics its shard");
    }
}
