//! The runtime: the only module that imports glommio.
pub mod channel;
pub mod exec;
pub mod net;
