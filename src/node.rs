//! node (being wired)
