//! Wire protocols: STOMP 1.0–1.2 and OpenWire v12 (the ActiveMQ JMS client's protocol).
pub mod openwire;
pub mod stomp;
