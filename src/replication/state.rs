//! `<data>/node.state`: what a node remembers about its pair across restarts, so that
//! a restarted node can tell whether it may serve or must follow its peer.
//!
//! # File format
//!
//! UTF-8 text, one `key=value` per line, unknown keys ignored (forward compatible):
//!
//! ```text
//! epoch=1245187          u64: the highest epoch this node has served or followed
//! role=master            none | master | slave: what this node was when it last changed
//!                        role (none: it never served nor followed)
//! node=1203              u16: this node's id (random at first start, never 0)
//! peer=127.0.0.1:61626   the other node's addresses, comma separated (may be empty)
//! history=65573:4096/4096;131162:90112/8192
//!                        the epochs of this node's log, oldest first: `epoch:starts`,
//!                        `starts` the journal position (u64) where the epoch's
//!                        records begin, per shard, `/`-separated; at most 32 kept
//! ```
//!
//! # History
//!
//! A log is a run of epochs: what the master of each epoch wrote, from where it took
//! over. A master appends its epoch with its journal's ends when it starts serving; a
//! slave adopts its master's history (its log is a copy of the master's). Two nodes'
//! logs are byte-identical up to the first epoch their histories disagree on
//! ([`divergence`]): a node that rejoins after a split brain sets aside what it holds
//! from there (`diverged-*`), never deletes it.
//!
//! Written whole to `node.state.tmp`, fsynced, renamed over `node.state`, and the
//! directory fsynced: a crash leaves the old or the new file, never a mix. A node acts
//! on a change (serves as master, tells a peer its epoch) only after it is on disk.
//!
//! # Epochs
//!
//! `epoch = counter << 16 | node id`. A node that starts serving as master (at start-up
//! or by taking over) takes `(highest counter it knows + 1) << 16 | its id`: epochs
//! only grow, and two nodes that both decided to serve (they could not reach each
//! other) never share an epoch. One epoch is therefore one master's uninterrupted run,
//! and a slave holding data of the master's current epoch holds a prefix of what that
//! master shipped: it can resume from where it is. Any other slave starts over from
//! the master's oldest retained segment.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::role::Role;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeState {
    pub epoch: u64,
    /// What the node was when it last changed role: `None` (`role=none`) when it never
    /// served nor followed (fresh data directory). A node that serves is recorded as
    /// [`Role::Master`] whether or not it has a peer; [`Role::Standalone`] (what
    /// `/status` shows for a master with no peer configured) is never stored, and
    /// would be written as `master`.
    pub role: Option<Role>,
    pub node_id: u16,
    pub peers: Vec<SocketAddr>,
    /// The epochs of this node's log (see the module docs).
    pub history: Vec<EpochStart>,
}

/// Where one epoch's records begin in the log, per shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochStart {
    pub epoch: u64,
    pub starts: Vec<u64>,
}

/// Most epochs `node.state` remembers (and a Welcome carries).
pub const HISTORY_MAX: usize = 32;

/// Per shard, where two logs with these histories stop being byte-identical: the start
/// of the first epoch they disagree on (the lower of the two when both have one there).
/// `None` for a shard where they never disagree. An empty history (a node that never
/// served nor followed, or one written before histories existed) disagrees at 0.
pub fn divergence(ours: &[EpochStart], theirs: &[EpochStart], shards: usize) -> Vec<Option<u64>> {
    let at =
        |e: Option<&EpochStart>, shard: usize| e.map(|e| e.starts.get(shard).copied().unwrap_or(0));
    let (mut i, mut j) = (0, 0);
    loop {
        match (ours.get(i), theirs.get(j)) {
            (Some(a), Some(b)) if a.epoch == b.epoch => {
                i += 1;
                j += 1;
            }
            (None, None) => return vec![None; shards],
            (a, b) => {
                if i == 0 && j == 0 && ours.is_empty() {
                    return vec![Some(0); shards];
                }
                return (0..shards)
                    .map(|s| match (at(a, s), at(b, s)) {
                        (Some(x), Some(y)) => Some(x.min(y)),
                        (x, y) => x.or(y),
                    })
                    .collect();
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {why}")]
    Invalid {
        path: PathBuf,
        line: usize,
        why: String,
    },
}

const FILE: &str = "node.state";

impl NodeState {
    /// A node that has never run: epoch 0, a fresh random id.
    pub fn fresh() -> NodeState {
        NodeState {
            epoch: 0,
            role: None,
            node_id: random_node_id(),
            peers: Vec::new(),
            history: Vec::new(),
        }
    }

    /// Records that this node's log continues with `epoch` from `starts`.
    pub fn push_history(&mut self, epoch: u64, starts: Vec<u64>) {
        self.history.retain(|e| e.epoch < epoch);
        self.history.push(EpochStart { epoch, starts });
        let excess = self.history.len().saturating_sub(HISTORY_MAX);
        self.history.drain(..excess);
    }

    /// Reads `<dir>/node.state`, or [`NodeState::fresh`] when there is none.
    pub fn load(dir: &Path) -> Result<NodeState, StateError> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(NodeState::fresh()),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        Self::parse(&text).map_err(|(line, why)| StateError::Invalid { path, line, why })
    }

    fn parse(text: &str) -> Result<NodeState, (usize, String)> {
        let mut s = NodeState {
            epoch: 0,
            role: None,
            node_id: 0,
            peers: Vec::new(),
            history: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| (i + 1, why.to_string());
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad("expected key=value"))?;
            match key {
                "epoch" => s.epoch = value.parse().map_err(|_| bad("epoch is not a u64"))?,
                "role" => {
                    s.role = match value {
                        "master" => Some(Role::Master),
                        "slave" => Some(Role::Slave),
                        "none" => None,
                        _ => return Err(bad("role is not master, slave or none")),
                    }
                }
                "node" => s.node_id = value.parse().map_err(|_| bad("node is not a u16"))?,
                "peer" => {
                    s.peers = value
                        .split(',')
                        .filter(|a| !a.trim().is_empty())
                        .map(|a| a.trim().parse())
                        .collect::<Result<_, _>>()
                        .map_err(|_| bad("peer is not a list of host:port addresses"))?
                }
                "history" => {
                    s.history = parse_history(value)
                        .ok_or_else(|| bad("history is not a list of epoch:start/start..."))?
                }
                _ => {}
            }
        }
        if s.node_id == 0 {
            s.node_id = random_node_id();
        }
        Ok(s)
    }

    fn render(&self) -> String {
        let role = match self.role {
            None => "none",
            Some(Role::Master | Role::Standalone) => "master",
            Some(Role::Slave) => "slave",
        };
        let peers: Vec<String> = self.peers.iter().map(|a| a.to_string()).collect();
        let mut text = format!(
            "epoch={}\nrole={role}\nnode={}\npeer={}\n",
            self.epoch,
            self.node_id,
            peers.join(",")
        );
        if !self.history.is_empty() {
            let h: Vec<String> = self
                .history
                .iter()
                .map(|e| {
                    let starts: Vec<String> = e.starts.iter().map(|p| p.to_string()).collect();
                    format!("{}:{}", e.epoch, starts.join("/"))
                })
                .collect();
            text.push_str(&format!("history={}\n", h.join(";")));
        }
        text
    }

    /// Writes the state durably (see the module docs).
    pub fn store(&self, dir: &Path) -> Result<(), StateError> {
        let path = dir.join(FILE);
        let tmp = dir.join("node.state.tmp");
        let err = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(self.render().as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(err)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }

    /// The epoch this node takes when it starts serving as master.
    pub fn next_epoch(&self) -> u64 {
        (((self.epoch >> 16) + 1) << 16) | u64::from(self.node_id)
    }
}

fn parse_history(value: &str) -> Option<Vec<EpochStart>> {
    let mut out: Vec<EpochStart> = Vec::new();
    for item in value.split(';').filter(|i| !i.trim().is_empty()) {
        let (epoch, starts) = item.trim().split_once(':')?;
        let epoch: u64 = epoch.parse().ok()?;
        let starts = starts
            .split('/')
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<u64>>>()?;
        if out.last().is_some_and(|l| l.epoch >= epoch) {
            return None;
        }
        out.push(EpochStart { epoch, starts });
    }
    Some(out)
}

fn random_node_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mixed = (nanos ^ (u64::from(std::process::id()) << 20)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((mixed >> 48) as u16).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = NodeState::load(dir.path()).unwrap();
        assert_eq!(fresh.epoch, 0);
        assert_eq!(fresh.role, None);
        assert_ne!(fresh.node_id, 0);
        let s = NodeState {
            epoch: fresh.next_epoch(),
            role: Some(Role::Master),
            node_id: fresh.node_id,
            peers: vec![
                "127.0.0.1:61626".parse().unwrap(),
                "[::1]:1".parse().unwrap(),
            ],
            history: vec![EpochStart {
                epoch: 7,
                starts: vec![4096, 8192],
            }],
        };
        assert_eq!(s.epoch >> 16, 1);
        s.store(dir.path()).unwrap();
        assert_eq!(NodeState::load(dir.path()).unwrap(), s);
        // Another node's next epoch after this one is higher and different.
        let other = NodeState {
            epoch: s.epoch,
            role: Some(Role::Slave),
            node_id: s.node_id.wrapping_add(1).max(1),
            peers: vec![],
            history: vec![],
        };
        assert!(other.next_epoch() > s.epoch);
        assert_ne!(other.next_epoch(), s.next_epoch());
    }

    #[test]
    fn the_role_line_keeps_its_spelling() {
        for (role, line) in [
            (None, "role=none"),
            (Some(Role::Master), "role=master"),
            (Some(Role::Slave), "role=slave"),
            (Some(Role::Standalone), "role=master"),
        ] {
            let s = NodeState {
                epoch: 1,
                role,
                node_id: 9,
                peers: vec![],
                history: vec![],
            };
            let text = s.render();
            assert_eq!(text, format!("epoch=1\n{line}\nnode=9\npeer=\n"));
            let back = NodeState::parse(&text).unwrap().role;
            assert_eq!(
                back,
                role.map(|r| if r == Role::Standalone {
                    Role::Master
                } else {
                    r
                })
            );
        }
    }

    fn h(list: &[(u64, u64)]) -> Vec<EpochStart> {
        list.iter()
            .map(|&(epoch, start)| EpochStart {
                epoch,
                starts: vec![start],
            })
            .collect()
    }

    #[test]
    fn logs_diverge_at_the_first_epoch_their_histories_disagree_on() {
        // The slave took over at 500 while the old master went on alone.
        assert_eq!(
            divergence(&h(&[(1, 0)]), &h(&[(1, 0), (2, 500)]), 1),
            vec![Some(500)]
        );
        // Both served after a shared epoch: the lower start.
        assert_eq!(
            divergence(&h(&[(1, 0), (3, 700)]), &h(&[(1, 0), (2, 500)]), 1),
            vec![Some(500)]
        );
        // Same history: nothing diverged.
        assert_eq!(
            divergence(&h(&[(1, 0), (2, 9)]), &h(&[(1, 0), (2, 9)]), 1),
            vec![None]
        );
        // Our history has an epoch the master never had: from its start.
        assert_eq!(
            divergence(&h(&[(1, 0), (4, 800)]), &h(&[(1, 0)]), 1),
            vec![Some(800)]
        );
        // Unknown history: all of it.
        assert_eq!(divergence(&[], &h(&[(1, 0)]), 1), vec![Some(0)]);
        let mut s = NodeState::fresh();
        for e in 1..=40 {
            s.push_history(e, vec![e]);
        }
        assert_eq!(s.history.len(), HISTORY_MAX);
        assert_eq!(s.history[0].epoch, 9);
        let back = NodeState::parse(&s.render()).unwrap();
        assert_eq!(back.history, s.history);
        assert!(NodeState::parse("history=2:1;1:1").is_err());
    }

    #[test]
    fn rejects_garbage_with_its_line() {
        let e = NodeState::parse("epoch=1\nrole=boss\n").unwrap_err();
        assert_eq!(e.0, 2);
        assert!(NodeState::parse("peer=nonsense").is_err());
        let s = NodeState::parse("future=1\nepoch=7\n").unwrap();
        assert_eq!(s.epoch, 7);
    }
}
