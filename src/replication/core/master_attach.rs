//! The master's side of the handshake: a new connection's Hello and Challenge (run
//! off the event loop, bounded by [`MAX_HANDSHAKES`]), the checked Proof that attaches
//! the slave ([`Attached`]) and starts its catch-up, and refusals, proven or not.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::master::LOG_TARGET;
use super::master_ship::{Attached, ShardSync};
use super::{Core, Ev, HANDSHAKE_MAX_FRAME_BYTES, HANDSHAKE_TIMEOUT};
use crate::replication::auth::{self, Acceptor, Key, MasterView, Nonces, OnHello, Verdict};
use crate::replication::frame::{Body, Decoder, Frame, RefuseCode, PROOF_BYTES};
use crate::replication::link::Link;
use crate::replication::machine::Input;
use crate::replication::port::{self, Command};
use crate::replication::role::{PeerState, Role};
use crate::rt;
use crate::store::Position;

impl Core {
    /// Runs a new connection's Hello and Challenge off the event loop; only a Proof
    /// (not yet checked) reaches the core, as [`Ev::Proof`]. Reads no node state: the
    /// Challenge carries the nonce and nothing else.
    pub(super) fn handshake(&self, stream: crate::rt::net::Detached, slot: port::ConnectionSlot) {
        if self.handshakes.get() >= MAX_HANDSHAKES {
            // Each is a task and a socket: bounded, so a flood of Hellos costs little.
            tracing::warn!(target: LOG_TARGET,
                limit = MAX_HANDSHAKES,
                "too many replication handshakes in progress; connection closed"
            );
            return;
        }
        self.handshakes.set(self.handshakes.get() + 1);
        let counter = self.handshakes.clone();
        let tx = self.queue_tx.clone();
        let acceptor = self.s.acceptor.clone();
        rt::spawn_local(async move {
            run_handshake(stream, slot, &acceptor, &tx).await;
            counter.set(counter.get().saturating_sub(1));
        });
    }

    /// Refuses an authenticated peer: the Refuse carries this master's epoch and proof.
    fn refuse(&self, link: &Rc<Link>, auth: &(Key, Nonces), code: RefuseCode, reason: String) {
        tracing::warn!(target: LOG_TARGET, peer = %link.peer, %reason, "slave refused");
        let mut f = Frame {
            epoch: self.state.borrow().epoch,
            body: Body::Refuse {
                proof: [0; PROOF_BYTES],
                code,
                reason,
            },
        };
        auth::sign(&auth.0, auth::MASTER_LABEL, &auth.1, &mut f);
        link.send(&f);
        let link = link.clone();
        rt::spawn_local(async move { link.close(Duration::from_millis(500)).await });
    }

    pub(super) fn on_proof(
        &self,
        current: &mut Option<Attached>,
        link: Rc<Link>,
        nonces: Nonces,
        proof: Frame,
    ) -> Option<Attached> {
        let ours = self.state.borrow().epoch;
        // The node we follow reattaching (it restarted, or its old link is dead and we
        // have not seen it yet): it replaces itself, once its proof checks out. Anyone
        // else is a second slave.
        let claimed = match &proof.body {
            Body::Proof { node_id, .. } => Some(node_id.as_str()),
            _ => None,
        };
        let same_node = current
            .as_ref()
            .is_some_and(|a| Some(a.node.as_str()) == claimed);
        let view = MasterView {
            epoch: ours,
            shards: self.s.shards,
            current_slave: current
                .as_ref()
                .filter(|_| !same_node)
                .map(|a| a.link.peer.to_string()),
        };
        let verdict = auth::judge_proof(&self.s.acceptor, &nonces, &view, &proof);
        if let Verdict::Unauthenticated(why) = &verdict {
            refuse_unauthenticated(&link, why.clone());
            return None;
        }
        // Present: the proof was checked against it.
        let key = self.s.acceptor.key_for(&nonces.user)?.clone();
        let auth = (key, nonces);
        let (resume, positions, client_addrs, node_id) = match verdict {
            Verdict::Unauthenticated(_) => return None,
            Verdict::Refuse {
                code,
                reason,
                stale,
            } => {
                let reason = if stale {
                    format!("the peer at {}: {reason}", link.peer)
                } else {
                    reason
                };
                self.refuse(&link, &auth, code, reason.clone());
                if stale {
                    // An authenticated peer served after this node did: this node's
                    // data is stale; the machine steps down.
                    tracing::error!(target: LOG_TARGET, "{reason}");
                    let effects = self.step(Input::NewerEpoch { epoch: proof.epoch });
                    self.perform_common(effects);
                }
                return None;
            }
            Verdict::Attach {
                resume,
                positions,
                client_addrs,
                node_id,
            } => (resume, positions, client_addrs, node_id),
        };
        if same_node {
            self.drop_slave(
                current,
                "the slave attached again on a new connection",
                true,
            );
        }
        // Only an authenticated peer's addresses are remembered.
        let peers: Vec<SocketAddr> = client_addrs.iter().filter_map(|a| a.parse().ok()).collect();
        // Shown as the slave's address: where it will serve if it takes over.
        let shown = peers.first().map_or(link.peer, |a| *a);
        if !peers.is_empty() {
            self.state.borrow_mut().peers = peers;
            if self.store_state().is_err() {
                return None;
            }
        }
        let link_id = self.spawn_reader(&link);
        let node = node_id.parse().unwrap_or(0);
        let effects = self.step(Input::SlaveAttached { node });
        self.perform_common(effects);
        for (shard, c) in self.commands.iter().enumerate() {
            let _ = c.try_send(Command::BeginSync {
                link: link_id,
                slave_has: resume.then(|| Position(positions[shard])),
            });
        }
        *self.catch_up_link.borrow_mut() = Some(link.clone());
        let stats = &self.s.stats;
        stats.set_role(Role::Master);
        stats.set_peer(PeerState::Syncing);
        stats.set_peer_address(Some(shown.to_string()));
        tracing::info!(target: LOG_TARGET, slave = %shown, link = %link.peer, node = %node_id, resume, "slave authenticated and attached; catching it up");
        Some(Attached {
            link,
            link_id,
            auth,
            welcomed: false,
            pending: Vec::new(),
            pending_bytes: 0,
            starts: vec![None; self.s.shards],
            shards: (0..self.s.shards).map(|_| ShardSync::new()).collect(),
            dropping_volatile: false,
            all_done: None,
            in_sync: false,
            caught_up: false,
            node: node_id.clone(),
            volatile_seq: 0,
        })
    }
}

/// Concurrent replication handshakes (Hello to Proof) the core runs at most.
const MAX_HANDSHAKES: usize = 8;

/// Hello, Challenge, Proof on a fresh connection; hands the Proof to the core.
async fn run_handshake(
    stream: crate::rt::net::Detached,
    slot: port::ConnectionSlot,
    acceptor: &Acceptor,
    tx: &async_channel::Sender<Ev>,
) {
    let Ok(peer) = stream.peer_addr() else { return };
    let (r, w) = match rt::net::attach(stream) {
        Ok(halves) => halves,
        Err(e) => {
            tracing::warn!(target: LOG_TARGET, %peer, error = %e, "cannot adopt the replication connection");
            return;
        }
    };
    // Nothing before the proof is trusted, so nothing large is read either.
    let link = Link::with_frame_limit(r, w, peer, HANDSHAKE_MAX_FRAME_BYTES);
    link.hold(slot);
    let first = match link.recv(HANDSHAKE_TIMEOUT).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(target: LOG_TARGET, %peer, error = %e, "replication handshake failed");
            link.close(Duration::from_millis(10)).await;
            return;
        }
    };
    let (user, slave_nonce) = match auth::on_hello(acceptor, &first) {
        OnHello::Refuse(why) => {
            refuse_unauthenticated(&link, why);
            return;
        }
        OnHello::Challenge { user, slave_nonce } => (user, slave_nonce),
    };
    let master_nonce = match auth::nonce() {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(target: LOG_TARGET, %peer, error = %e, "replication handshake abandoned");
            link.close(Duration::from_millis(10)).await;
            return;
        }
    };
    link.send(&Frame {
        epoch: 0,
        body: Body::Challenge {
            nonce: master_nonce,
        },
    });
    match link.recv(HANDSHAKE_TIMEOUT).await {
        Ok(proof) => {
            let nonces = Nonces {
                user,
                slave: slave_nonce,
                master: master_nonce,
            };
            link.set_frame_limit(Decoder::DEFAULT_MAX_FRAME_BYTES);
            let _ = tx.try_send(Ev::Proof(link, nonces, proof));
        }
        Err(e) => {
            tracing::warn!(target: LOG_TARGET, %peer, error = %e, "replication handshake failed after the Challenge");
            link.close(Duration::from_millis(10)).await;
        }
    }
}

/// Refuses a peer that has not authenticated: logged here, told to the peer with no
/// detail of this node (epoch 0, no proof), and nothing else happens.
fn refuse_unauthenticated(link: &Rc<Link>, reason: String) {
    tracing::warn!(target: LOG_TARGET, peer = %link.peer, %reason, "replication handshake refused");
    link.send(&auth::unauthenticated_refuse(reason));
    let link = link.clone();
    rt::spawn_local(async move { link.close(Duration::from_millis(500)).await });
}
