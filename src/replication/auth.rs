//! Authentication of the replication link: who may attach as a slave, how both nodes
//! prove they hold the replication secret, and the pure decisions taken on each
//! handshake frame (unit- and property-tested here, without sockets).
//!
//! # Handshake (frames in [`super::frame`]; docs/REPLICATION.md, "Handshake")
//!
//! ```text
//! slave                                              master
//!   Hello     epoch 0, version, user, ns  ───────▶   (no state read or written)
//!             ◀───────  Challenge epoch 0, nm
//!   Proof     epoch e_s, proof_s, node id,  ──────▶  verify proof_s, then decide
//!             addresses, positions
//!             ◀───────  Welcome  epoch e_m, proof_m, master id, oldest
//!                    or Refuse   epoch e_m, proof_m, code, reason  (authenticated)
//!                    or Refuse   epoch 0, zeros, code 1, reason    (not authenticated)
//! ```
//!
//! `ns` and `nm` are 32 random bytes from the OS, fresh for every connection. A proof
//! is `HMAC-SHA256(key, label || u32 len(user) || user || ns || nm || F)` where `F` is
//! the frame that carries it, encoded with its proof field zeroed (so the proof covers
//! the kind, the epoch and every field: the positions, addresses and shard count).
//! `label` is [`SLAVE_LABEL`] for the slave's Proof and [`MASTER_LABEL`] for the
//! master's Welcome or Refuse:
//!
//! * mutual: each side proves the key to the other, and believes nothing the other
//!   says (epoch, shard count, addresses, positions) before the other's proof checks;
//! * not replayable: the master's nonce is fresh, so a captured Proof fails on any
//!   other connection; the slave's nonce does the same for a captured Welcome;
//! * not reflectable: the labels differ by direction, so a proof the master makes can
//!   never pass as a slave's, or the other way round;
//! * the secret never travels; tags are compared in constant time (`verify_slice`).
//!
//! The key is a password or secret string's UTF-8 bytes: a master with the
//! authentication plugin takes the password of the named user if that user's groups
//! include the replication group (`<tandem replicationGroup>`, default `admins`);
//! otherwise `<tandem replicationSecret>`. A node with neither refuses every
//! handshake. Without TLS the bytes after the handshake are not protected against a
//! man in the middle: firewall the replication ports (README, Security).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::frame::{self, Body, Frame, Nonce, Proof, RefuseCode, NONCE_BYTES, VERSION};

type HmacSha256 = Hmac<Sha256>;

/// What a slave's proof is bound to, besides the nonces.
pub const SLAVE_LABEL: &[u8] = b"tandem replication v2: slave to master";
/// What a master's proof is bound to, besides the nonces.
pub const MASTER_LABEL: &[u8] = b"tandem replication v2: master to slave";

/// A replication key: never logged, never sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new(secret: &str) -> Key {
        Key(secret.as_bytes().to_vec())
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// A user of the authentication plugin, as the master checks a slave against it.
#[derive(Clone, Debug)]
pub struct PluginUser {
    pub name: String,
    pub key: Key,
    pub groups: Vec<String>,
}

/// How this node checks a peer that wants to attach (or that it rejoins).
#[derive(Clone, Debug, Default)]
pub struct Acceptor {
    /// Set when the authentication plugin is on: its users.
    pub plugin: Option<Vec<PluginUser>>,
    /// `<tandem replicationGroup>`.
    pub group: String,
    /// `<tandem replicationSecret>`.
    pub secret: Option<Key>,
}

impl Acceptor {
    /// The key a peer naming `user` must prove, if there is one. A user of the plugin
    /// outside the replication group has none.
    pub fn key_for(&self, user: &str) -> Option<&Key> {
        if let Some(users) = &self.plugin {
            if !user.is_empty() {
                return users
                    .iter()
                    .find(|u| u.name == user && u.groups.contains(&self.group))
                    .map(|u| &u.key);
            }
        }
        self.secret.as_ref()
    }

    /// Why no peer can ever be authenticated, when that is so.
    pub fn cannot_authenticate(&self) -> Option<String> {
        let plugin_has_one = self
            .plugin
            .as_ref()
            .is_some_and(|us| us.iter().any(|u| u.groups.contains(&self.group)));
        if plugin_has_one || self.secret.is_some() {
            return None;
        }
        Some(match &self.plugin {
            Some(_) => format!(
                "this node accepts no slave: no user of its simpleAuthenticationPlugin is in \
                 the replication group '{}' (<tandem replicationGroup>) and no \
                 <tandem replicationSecret> is set",
                self.group
            ),
            None => "this node accepts no slave: no replication secret is configured \
                     (set <tandem replicationSecret> on both nodes of a pair)"
                .to_string(),
        })
    }

    /// The login this node uses to rejoin a peer it remembers (it has no configured
    /// master): the replication secret, else the first plugin user of the group.
    pub fn rejoin_login(&self) -> Option<Login> {
        if let Some(key) = &self.secret {
            return Some(Login {
                user: String::new(),
                key: key.clone(),
            });
        }
        self.plugin.as_ref().and_then(|users| {
            users
                .iter()
                .find(|u| u.groups.contains(&self.group))
                .map(|u| Login {
                    user: u.name.clone(),
                    key: u.key.clone(),
                })
        })
    }
}

/// What a node proves when it connects to a master.
#[derive(Clone, Debug)]
pub struct Login {
    pub user: String,
    pub key: Key,
}

/// The per-connection values both proofs are bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nonces {
    pub user: String,
    pub slave: Nonce,
    pub master: Nonce,
}

#[derive(Debug, thiserror::Error)]
#[error("no random bytes from the OS for a handshake nonce: {0}")]
pub struct NonceError(String);

/// A fresh nonce from the OS random source.
pub fn nonce() -> Result<Nonce, NonceError> {
    let mut n = [0u8; NONCE_BYTES];
    getrandom::getrandom(&mut n).map_err(|e| NonceError(e.to_string()))?;
    Ok(n)
}

/// The frame's proof field, if it has one.
fn proof_of(body: &Body) -> Option<&Proof> {
    match body {
        Body::Proof { proof, .. } | Body::Welcome { proof, .. } | Body::Refuse { proof, .. } => {
            Some(proof)
        }
        _ => None,
    }
}

fn mac(key: &Key, label: &[u8], n: &Nonces, frame: &Frame) -> Option<HmacSha256> {
    let mut zeroed = frame.clone();
    match &mut zeroed.body {
        Body::Proof { proof, .. } | Body::Welcome { proof, .. } | Body::Refuse { proof, .. } => {
            *proof = [0; frame::PROOF_BYTES]
        }
        _ => return None,
    }
    let mut bytes = bytes::BytesMut::new();
    frame::encode(&zeroed, &mut bytes);
    // HMAC takes keys of any length: this never fails.
    let mut m = HmacSha256::new_from_slice(&key.0).ok()?;
    m.update(label);
    m.update(&(n.user.len() as u32).to_le_bytes());
    m.update(n.user.as_bytes());
    m.update(&n.slave);
    m.update(&n.master);
    m.update(&bytes);
    Some(m)
}

/// Fills in the proof of `frame` (a Proof, Welcome or Refuse); other frames are left
/// as they are.
pub fn sign(key: &Key, label: &[u8], n: &Nonces, frame: &mut Frame) {
    let Some(m) = mac(key, label, n, frame) else {
        return;
    };
    let tag: Proof = m.finalize().into_bytes().into();
    if let Body::Proof { proof, .. } | Body::Welcome { proof, .. } | Body::Refuse { proof, .. } =
        &mut frame.body
    {
        *proof = tag;
    }
}

/// Whether `frame` carries a valid proof of `key` (constant-time comparison).
pub fn verify(key: &Key, label: &[u8], n: &Nonces, frame: &Frame) -> bool {
    match (proof_of(&frame.body), mac(key, label, n, frame)) {
        (Some(proof), Some(m)) => m.verify_slice(proof).is_ok(),
        _ => false,
    }
}

// ---- the master's decisions -------------------------------------------------------

/// The master's answer to a connection's first frame.
#[derive(Debug, PartialEq, Eq)]
pub enum OnHello {
    /// Send a Challenge with this node's nonce and wait for the Proof.
    Challenge { user: String, slave_nonce: Nonce },
    /// Send an unauthenticated Refuse with this reason (and log it) and close.
    Refuse(String),
}

/// What a master does with a connection's first frame. Reads no node state: the answer
/// carries no epoch, shard count or anything else.
pub fn on_hello(acceptor: &Acceptor, first: &Frame) -> OnHello {
    let Body::Hello {
        version,
        user,
        nonce,
    } = &first.body
    else {
        return OnHello::Refuse("the replication connection did not start with Hello".into());
    };
    if *version != VERSION {
        return OnHello::Refuse(format!(
            "link version {version} is not supported (this node speaks {VERSION})"
        ));
    }
    if let Some(why) = acceptor.cannot_authenticate() {
        return OnHello::Refuse(why);
    }
    OnHello::Challenge {
        user: user.clone(),
        slave_nonce: *nonce,
    }
}

/// What the master knows of itself when it judges a Proof.
#[derive(Clone, Debug)]
pub struct MasterView {
    pub epoch: u64,
    pub shards: usize,
    /// The peer address of the attached slave, if there is one.
    pub current_slave: Option<String>,
}

/// The master's verdict on a Proof.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not authenticated: an unauthenticated Refuse (code 1, epoch 0, no detail), a log
    /// line, and nothing else.
    Unauthenticated(String),
    /// Authenticated but refused: a signed Refuse at this master's epoch. `stale`: the
    /// slave holds a newer epoch than this master, which must stop serving.
    Refuse {
        code: RefuseCode,
        reason: String,
        stale: bool,
    },
    /// Authenticated: attach.
    Attach {
        /// The slave holds this master's epoch: it can resume from its positions.
        resume: bool,
        positions: Vec<u64>,
        client_addrs: Vec<String>,
        node_id: String,
    },
}

/// Judges the frame that follows the Challenge. Only a frame whose proof checks out
/// against the key of the user named in Hello gets anything but `Unauthenticated`.
pub fn judge_proof(acceptor: &Acceptor, n: &Nonces, view: &MasterView, frame: &Frame) -> Verdict {
    let Body::Proof {
        node_id,
        client_addrs,
        positions,
        ..
    } = &frame.body
    else {
        return Verdict::Unauthenticated("expected Proof after Challenge".into());
    };
    let proven = acceptor
        .key_for(&n.user)
        .is_some_and(|key| verify(key, SLAVE_LABEL, n, frame));
    if !proven {
        return Verdict::Unauthenticated(if n.user.is_empty() {
            "bad credentials: the peer did not prove the replication secret".to_string()
        } else {
            format!(
                "bad credentials: the peer did not prove the replication secret of user '{}'",
                n.user
            )
        });
    }
    if let Some(current) = &view.current_slave {
        return Verdict::Refuse {
            code: RefuseCode::SecondSlave,
            reason: format!("this master already has a slave ({current})"),
            stale: false,
        };
    }
    if positions.len() != view.shards {
        return Verdict::Refuse {
            code: RefuseCode::ShardMismatch,
            reason: format!(
                "the slave has {} shards and this master {}: configure the same <tandem shards>",
                positions.len(),
                view.shards
            ),
            stale: false,
        };
    }
    if frame.epoch > view.epoch {
        return Verdict::Refuse {
            code: RefuseCode::StaleEpoch,
            reason: format!(
                "the peer holds a newer epoch ({} > {}): this node steps down and \
                 rejoins as slave",
                frame.epoch, view.epoch
            ),
            stale: true,
        };
    }
    Verdict::Attach {
        resume: frame.epoch == view.epoch,
        positions: positions.clone(),
        client_addrs: client_addrs.clone(),
        node_id: node_id.clone(),
    }
}

/// An unauthenticated Refuse: epoch 0, no proof, code 1, and the reason.
pub fn unauthenticated_refuse(reason: String) -> Frame {
    Frame {
        epoch: 0,
        body: Body::Refuse {
            proof: [0; frame::PROOF_BYTES],
            code: RefuseCode::BadCredentials,
            reason,
        },
    }
}

// ---- the slave's decisions --------------------------------------------------------

/// What a connecting node makes of the master's answer to its Proof.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// A Welcome with a valid proof, the right shard count and an epoch not below
    /// ours: follow this master.
    Welcomed,
    /// A Refuse with a valid proof: its code and epoch may be believed.
    Refused {
        code: RefuseCode,
        reason: String,
        epoch: u64,
    },
    /// A Refuse without a valid proof: the reason is shown, nothing else believed.
    RefusedUnauthenticated { reason: String },
    /// Anything else (no or a bad proof, a lower epoch, a wrong shard count, another
    /// kind): believe nothing, close.
    Bogus(String),
}

/// Judges the master's answer to this node's Proof.
pub fn judge_answer(key: &Key, n: &Nonces, our_epoch: u64, shards: usize, f: &Frame) -> Answer {
    match &f.body {
        Body::Welcome { oldest, .. } => {
            if !verify(key, MASTER_LABEL, n, f) {
                Answer::Bogus("the peer's Welcome does not prove the replication secret".into())
            } else if oldest.len() != shards {
                Answer::Bogus(format!(
                    "the master has {} shards and this node {shards}",
                    oldest.len()
                ))
            } else if f.epoch < our_epoch {
                Answer::Bogus(format!(
                    "the master's epoch {} is below this node's {our_epoch}",
                    f.epoch
                ))
            } else {
                Answer::Welcomed
            }
        }
        Body::Refuse { code, reason, .. } => {
            if verify(key, MASTER_LABEL, n, f) {
                Answer::Refused {
                    code: *code,
                    reason: reason.clone(),
                    epoch: f.epoch,
                }
            } else {
                Answer::RefusedUnauthenticated {
                    reason: reason.clone(),
                }
            }
        }
        Body::Goodbye { reason } => Answer::Bogus(format!("the peer said goodbye ({reason})")),
        other => Answer::Bogus(format!(
            "unexpected answer to Proof: {:?}",
            std::mem::discriminant(other)
        )),
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
