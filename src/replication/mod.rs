//! Master/slave replication: the link between a master and its one slave, over which the
//! master ships every journal batch verbatim (and non-persistent traffic as volatile
//! records) and the slave acknowledges what it has received and made durable, so that a
//! persistent operation is answered only once both sides hold it. So far only the
//! link's byte-level frame codec exists ([`frame`]).
//!
//! The link is not wired yet; see docs/REPLICATION.md.

pub mod frame;
