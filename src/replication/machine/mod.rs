//! The pair's decisions as a pure state machine: who serves, who follows, when a node
//! may confirm writes without its slave, when a slave takes over, and when a master
//! steps down.
//!
//! [`Machine::step`]`(now, input) -> effects`: no I/O, no clock, no randomness. The
//! replication core ([`super::core`]) feeds it what happened (ticks, link events, the
//! answers of probes and of the witness) and performs the effects; the simulator in
//! `tests/sim.rs` feeds it the same inputs from a seeded world with crashes, pauses,
//! partitions and a witness, and checks the invariants after every step. The data path
//! (shipping, catch-up, acknowledgements) stays in the core; this machine decides only
//! what can make two masters or lose a confirmed write.
//!
//! # The rules
//!
//! * **Confirming.** A master confirms a write when its record is durable here and
//!   either the in-sync slave acknowledged it, or the machine granted the right to
//!   confirm *alone* ([`Effect::ConfirmAlone`]). A grant is short (two heartbeats) and
//!   renewed on each tick while it holds, so a master whose process stops confirms
//!   nothing once the grant runs out, before its slave can have decided it is gone
//!   (five heartbeats of silence).
//! * **Pauses.** A tick that comes more than the silence bound after the previous one
//!   means this process was stopped (SIGSTOP, a VM pause, a stall): whatever the peer
//!   decided meanwhile is unknown. A master then grants nothing until it has asked the
//!   peer who serves ([`Effect::Probe`]); a slave restarts its silence count (its own
//!   pause is not the master's silence).
//! * **Losing the slave.** A master that loses its slave (closed link, silence, ack
//!   timeout) grants nothing until a probe answered: the peer refuses connections or
//!   serves an older epoch (it is not serving: grant), serves a newer epoch (step
//!   down), or is silent (without a witness: grant, availability as ActiveMQ; with a
//!   witness: only the lease decides).
//! * **Losing the master.** A slave that is in sync and loses its master probes it: a
//!   master that welcomes it again is followed; otherwise (refused, silent) it takes
//!   over, after winning the witness when there is one. A slave that is not in sync
//!   never takes over.
//! * **Newer epochs.** A node that learns of a proven newer epoch serving steps down at
//!   once ([`Effect::StepDown`]).
//! * **Witness** (`<tandem witness>`). The witness holds a lease key (present while a
//!   master holds the right to serve) and a state record `{epoch, node, in_sync}`. A
//!   master serves only after winning the lease; it confirms alone only while its
//!   lease is valid *and* the record says no slave is in sync (written before it
//!   confirms alone); a slave counts as in sync only once the record names it. A slave
//!   takes over only by winning the lease with the record still naming it in sync at
//!   its master's epoch: a master that served alone since has rewritten the record, so
//!   a stale slave can never win. A master that has neither its lease nor an in-sync
//!   slave for [`Settings::fence_after`] can confirm nothing: it starts again
//!   ([`Effect::Restart`]) with its connectors closed, so clients fail over instead of
//!   waiting, and serves again only by winning the lease.

use std::time::Duration;

use super::role::Role;

mod discover;
mod serve;
mod witness;

/// The witness's state record: which node serves at which epoch, and which slave is in
/// sync (`None`: the master confirms alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub epoch: u64,
    pub node: u16,
    pub in_sync: Option<u16>,
}

/// What a campaign for the witness's lease requires of the state record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No record yet: a fresh pair.
    Absent,
    /// Exactly this record.
    Is(Claim),
    /// A record written by `node` at `epoch` (whatever it says of the slave).
    WrittenBy { epoch: u64, node: u16 },
}

/// Fixed parameters.
#[derive(Clone, Debug)]
pub struct Settings {
    pub node_id: u16,
    /// The tick interval: heartbeats go out on each.
    pub heartbeat: Duration,
    /// Silence after which the peer is lost (five heartbeats).
    pub silence: Duration,
    /// How long a grant to confirm alone lasts; renewed on each tick. Less than
    /// `silence`, so that a stopped master's grant runs out before its slave can
    /// decide it is gone.
    pub grant: Duration,
    /// How often a master serving without a slave asks its peer who serves (so a split
    /// brain ends soon after the link heals).
    pub recheck: Duration,
    /// Pause between discovery attempts and between witness campaigns.
    pub retry: Duration,
    /// With a witness: how long a master without its lease and without an in-sync
    /// slave keeps its connectors open before it starts again ([`Effect::Restart`]).
    pub fence_after: Duration,
    /// A witness is configured.
    pub witness: bool,
    /// A master is configured (`masterConnectorURI`): a fresh node follows it.
    pub configured_master: bool,
    /// Somebody to ask: a configured master or a remembered peer. (A fresh master
    /// gains one when its first slave attaches.)
    pub has_peer: bool,
    pub shutdown_on_master_failure: bool,
    pub shutdown_on_slave_failure: bool,
}

impl Settings {
    /// The defaults derived from the heartbeat interval.
    pub fn from_heartbeat(node_id: u16, heartbeat: Duration) -> Settings {
        Settings {
            node_id,
            heartbeat,
            silence: heartbeat * 5,
            grant: heartbeat * 2,
            recheck: heartbeat * 10,
            retry: heartbeat * 2,
            fence_after: heartbeat * 20,
            witness: false,
            configured_master: false,
            has_peer: false,
            shutdown_on_master_failure: false,
            shutdown_on_slave_failure: false,
        }
    }
}

/// What the node remembered (`node.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remembered {
    pub epoch: u64,
    pub role: Option<Role>,
}

/// How a discovery attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttachResult {
    /// A proven master welcomed this node at `epoch`: follow it.
    Welcomed { epoch: u64 },
    /// A proven refusal. `stale`: the peer holds an older epoch and steps down.
    Refused {
        epoch: u64,
        stale: bool,
        reason: String,
    },
    /// A refusal that proved nothing (or a wrong secret): believe nothing.
    RefusedUnproven,
    /// Nobody answered (connection refused or timed out).
    Unreachable,
    /// This node has nothing to prove: it can never attach.
    NoLogin(String),
}

/// What a probe of the peer found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// Nobody serves there: the connection was refused (the process is gone, or it is a
    /// slave with its connectors closed), or the peer answered with an older epoch.
    NotServing,
    /// No answer within the bound: paused, partitioned, or dead behind a silent
    /// network. Cannot be told apart.
    Silent,
    /// A proven answer from a master at `epoch` (it welcomed this node as a slave).
    Serving { epoch: u64 },
}

/// What the witness agent reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WitnessInput {
    /// This node holds the lease until `valid_until` (measured from before the request).
    Won {
        valid_until: Duration,
    },
    /// Somebody else holds the lease, or the state record did not match.
    Lost {
        state: Option<Claim>,
    },
    Renewed {
        valid_until: Duration,
    },
    LeaseLost,
    Updated {
        ok: bool,
        claim: Claim,
    },
    Unreachable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Once, first.
    Start,
    /// Every heartbeat interval.
    Tick,
    Attach(AttachResult),
    Probe(ProbeResult),
    /// A valid frame from the peer on the current link.
    Heard,
    /// Slave: the master says this node is in sync.
    InSync,
    /// Slave: what the master shipped could not be applied: the copy is broken until
    /// a new attach starts it over.
    Resync,
    /// The current link to the peer ended; `clean`: it said Goodbye.
    LinkClosed {
        clean: bool,
        why: String,
    },
    /// Master: a proven slave attached (`node` is its id).
    SlaveAttached {
        node: u16,
    },
    /// Master: the attached slave holds everything the shards wait for.
    SlaveCaughtUp,
    /// A proven peer holds this newer epoch.
    NewerEpoch {
        epoch: u64,
    },
    Witness(WitnessInput),
    /// A clean shutdown was asked for.
    Shutdown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Try to attach to the peer as its slave; answer with [`Input::Attach`].
    Attach,
    /// Ask the peer who serves (a bounded attach); answer with [`Input::Probe`]. The
    /// driver closes any link the probe opened unless a [`Effect::Follow`] follows.
    Probe,
    /// Follow the master that welcomed this node (attach or probe) at `epoch`:
    /// persist `epoch` and `role=slave`, then mirror it.
    Follow {
        epoch: u64,
    },
    /// Close the link to the peer (it fell silent).
    CloseLink,
    /// Persist `epoch` and `role=master`, then serve.
    Serve {
        epoch: u64,
        takeover: bool,
    },
    /// The shards may confirm writes without a slave acknowledgement until `until`
    /// (`None`: only with one). Sent on every change and renewed on each tick.
    ConfirmAlone(Option<Duration>),
    /// Master: tell the slave it is in sync (replies already wait for it).
    DeclareInSync,
    /// A newer epoch serves elsewhere: persist `role=slave`, stop serving, rejoin.
    StepDown {
        epoch: u64,
        why: String,
    },
    /// Stop serving and start again (node state unchanged): discovery decides anew.
    Restart {
        why: String,
    },
    Exit {
        code: i32,
        reason: String,
    },
    Campaign {
        claim: Claim,
        expect: Expect,
    },
    WitnessUpdate {
        claim: Claim,
    },
    WitnessResign,
    /// A clean shutdown may proceed (Goodbye sent by the driver).
    Stopped,
}

/// Why a campaign runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Campaign {
    /// Discovery found nobody and this node may serve.
    Start,
    /// A slave whose master is gone.
    Takeover { master_epoch: u64 },
    /// A master that lost its lease and wants it back.
    Regain,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Discovering {
        next_attempt: Duration,
        attempting: bool,
    },
    Campaigning {
        why: Campaign,
        next_attempt: Duration,
        /// The claim of the campaign that is out.
        pending: Option<Claim>,
    },
    Following {
        master_epoch: u64,
        in_sync: bool,
        last_heard: Duration,
        /// The link is gone and a probe of the master is out.
        probing: bool,
    },
    Serving(Serving),
    Stopped,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Serving {
    takeover: bool,
    slave: Option<SlaveSeat>,
    /// A probe must answer before anything is granted (pause, lost slave).
    verify: bool,
    probing: bool,
    last_probe: Duration,
    /// Witness: the lease is ours until then.
    lease_until: Option<Duration>,
    /// Witness: since when the lease is lost (see [`Settings::fence_after`]).
    lease_lost_at: Option<Duration>,
    /// Witness: what the record says (as written by us), once written.
    recorded: Option<Claim>,
    /// Witness: an update is out.
    updating: bool,
    regaining: bool,
    /// The grant last sent to the shards.
    granted: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SlaveSeat {
    node: u16,
    last_heard: Duration,
    in_sync: bool,
    /// Caught up, waiting for the witness record to name it.
    declaring: bool,
}

pub struct Machine {
    s: Settings,
    epoch: u64,
    role: Option<Role>,
    /// Highest epoch counter seen from anyone: a new epoch is above it.
    highest_seen: u64,
    phase: Phase,
    last_tick: Option<Duration>,
}

impl Machine {
    pub fn new(s: Settings, remembered: Remembered) -> Machine {
        assert!(
            s.grant < s.silence,
            "a grant must run out before the peer gives up"
        );
        Machine {
            epoch: remembered.epoch,
            role: remembered.role,
            highest_seen: remembered.epoch,
            s,
            phase: Phase::Stopped,
            last_tick: None,
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn is_serving(&self) -> bool {
        matches!(self.phase, Phase::Serving(_))
    }

    pub fn is_following(&self) -> bool {
        matches!(self.phase, Phase::Following { .. })
    }

    pub fn is_discovering(&self) -> bool {
        matches!(
            self.phase,
            Phase::Discovering { .. } | Phase::Campaigning { .. }
        )
    }

    /// Following a master that said this node is in sync.
    pub fn is_in_sync(&self) -> bool {
        matches!(self.phase, Phase::Following { in_sync: true, .. })
    }

    pub fn is_stopped(&self) -> bool {
        matches!(self.phase, Phase::Stopped)
    }

    /// Whether the shards may confirm alone at `now` (what the last grant said).
    pub fn may_confirm_alone(&self, now: Duration) -> bool {
        match &self.phase {
            Phase::Serving(sv) => sv.granted.is_some_and(|u| now < u),
            _ => false,
        }
    }

    pub fn step(&mut self, now: Duration, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        let epoch_before = self.epoch;
        let paused = match input {
            Input::Tick => {
                let gap = self.last_tick.map(|t| now.saturating_sub(t));
                self.last_tick = Some(now);
                gap.is_some_and(|g| g > self.s.silence)
            }
            _ => false,
        };
        match input {
            Input::Start => self.start_discovery(now, &mut out),
            Input::Tick => self.on_tick(now, paused, &mut out),
            Input::Attach(r) => self.on_attach(now, r, &mut out),
            Input::Probe(r) => self.on_probe(now, r, &mut out),
            Input::Heard => match &mut self.phase {
                Phase::Following { last_heard, .. } => *last_heard = now,
                Phase::Serving(Serving {
                    slave: Some(seat), ..
                }) => seat.last_heard = now,
                _ => {}
            },
            Input::InSync => {
                if let Phase::Following { in_sync, .. } = &mut self.phase {
                    *in_sync = true;
                }
            }
            Input::Resync => {
                if self.is_following() {
                    self.phase = Phase::Discovering {
                        next_attempt: now,
                        attempting: false,
                    };
                }
            }
            Input::LinkClosed { clean, why } => self.on_link_closed(now, clean, why, &mut out),
            Input::SlaveAttached { node } => {
                self.s.has_peer = true;
                if let Phase::Serving(sv) = &mut self.phase {
                    sv.slave = Some(SlaveSeat {
                        node,
                        last_heard: now,
                        in_sync: false,
                        declaring: false,
                    });
                }
            }
            Input::SlaveCaughtUp => self.on_caught_up(&mut out),
            Input::NewerEpoch { epoch } => {
                self.on_newer_epoch(epoch, "a peer proved a newer epoch", &mut out)
            }
            Input::Witness(w) => self.on_witness(now, w, &mut out),
            Input::Shutdown => {
                if self.is_serving() && self.s.witness {
                    out.push(Effect::WitnessResign);
                }
                self.phase = Phase::Stopped;
                out.push(Effect::Stopped);
            }
        }
        self.check(now, epoch_before, &out);
        out
    }

    // ---- invariants ----

    fn check(&self, now: Duration, epoch_before: u64, out: &[Effect]) {
        assert!(self.epoch >= epoch_before, "epochs only grow");
        for e in out {
            match e {
                Effect::ConfirmAlone(Some(until)) => {
                    let Phase::Serving(sv) = &self.phase else {
                        panic!("a grant to confirm alone while not serving")
                    };
                    assert!(!sv.verify, "a grant before the peer was asked");
                    assert!(
                        sv.slave.is_none_or(|s| !s.in_sync && !s.declaring),
                        "a grant to confirm alone while a slave is in sync"
                    );
                    assert!(*until <= now + self.s.grant, "a grant longer than allowed");
                    if self.s.witness {
                        let lease = sv.lease_until.expect("a grant without the lease");
                        assert!(*until <= lease, "a grant beyond the lease");
                        assert!(
                            sv.recorded
                                .is_some_and(|c| c.in_sync.is_none() && c.epoch == self.epoch),
                            "a grant before the witness records that no slave is in sync"
                        );
                    }
                }
                Effect::Serve { epoch, .. } => {
                    assert!(*epoch > epoch_before, "a new master run takes a new epoch");
                }
                Effect::Follow { epoch } => assert!(*epoch >= epoch_before),
                _ => {}
            }
        }
    }
}

/// The id of the node that serves `epoch` (its low 16 bits; see `state.rs`).
pub fn epoch_node(epoch: u64) -> u16 {
    (epoch & 0xffff) as u16
}
