//! The witness agent: one thread that owns an [`Etcd`] client, so the async broker never
//! blocks on etcd. The broker sends [`WitnessRequest`]s through a [`WitnessHandle`]
//! (non-blocking, bounded) and receives [`WitnessEvent`]s on an `async_channel`
//! (`.recv().await` on the async side, `recv_blocking` elsewhere).
//!
//! # States
//!
//! * idle — no lease. `Campaign` runs [`Etcd::campaign`]: `Won` moves to holding,
//!   `Lost` stays idle. `Update` answers `Updated{ok: false}`; `Resign` does nothing.
//! * holding `(lease, ttl, valid_until)` — renews the lease every `ttl/3` by itself
//!   and reports `Renewed{valid_until}`. `valid_until` is always the time the request
//!   that granted or renewed the lease was *sent*, plus the TTL (see [`super`] for why
//!   that is safe). Leaves holding with `LeaseLost{why}` when etcd says the lease is
//!   gone, when an update finds the lease key no longer ours, or when no renewal got
//!   through before `valid_until` (requests are cut off at `valid_until`, so the event
//!   comes no later than that, give or take scheduling). `Resign` revokes the lease
//!   and goes idle without an event (an error is reported, and the lease then expires
//!   by itself). `Campaign` while holding is answered `Won` with the current
//!   `valid_until` and writes nothing (use `Update` to change the record).
//!
//! A failed request is reported as `Unreachable` (no endpoint answered) or `Failed`
//! (etcd refused it or its reply made no sense) and changes no state. A failing renewal
//! is reported once per streak and retried until `valid_until`; each attempt on one
//! endpoint takes at most `ttl/3`, so the first failure is reported, and another
//! endpoint tried, before `valid_until`. Renewals go before queued requests.
//!
//! The thread ends when the [`WitnessHandle`] is dropped, or at its next wake-up once the
//! event receiver is dropped. It does *not* revoke a lease it holds then: its owner may still act on `valid_until` (a
//! panicking master confirming its last writes), and a revoke would let the other node
//! win before that time. The lease expires after its TTL instead; to hand over at once,
//! send `Resign` after stopping.

use std::sync::mpsc::{self, RecvTimeoutError, TrySendError};
use std::time::{Duration, Instant};

use super::campaign::{Campaign, Expect, Keys};
use super::etcd::{Bound, Etcd, EtcdTimeouts, LeaseId};
use super::{Record, WitnessError};

/// Requests queued for the agent at most; more is a caller bug ([`WitnessError::AgentBusy`]).
pub const REQUESTS_MAX: usize = 16;
/// Events buffered for the owner at most. `Renewed` is skipped once half of this is in
/// use (the next one supersedes it); any other event that finds the queue full is
/// dropped and logged: an owner that far behind has bigger problems, and safety never
/// depends on an event arriving, since `valid_until` only runs out.
pub const EVENTS_MAX: usize = 64;

/// What the owner asks the agent to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WitnessRequest {
    /// Try to become the holder, writing `record` if `expect` holds for the state key.
    Campaign { record: Record, expect: Expect },
    /// As holder, write `record` to both keys.
    Update { record: Record },
    /// Give up the lease (the other node can win at once).
    Resign,
}

/// What the agent reports, in the order things happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WitnessEvent {
    /// The campaign won: we hold the lease until at least `valid_until`.
    Won { valid_until: Instant },
    /// The campaign lost: who holds the lease key, and what the state key says.
    Lost {
        holder: Option<Record>,
        state: Option<Record>,
    },
    /// A renewal got through: we hold the lease until at least `valid_until`.
    Renewed { valid_until: Instant },
    /// We no longer hold the lease (or cannot tell that we do); campaign again to hold.
    LeaseLost { why: String },
    /// An update finished: `ok` false if we did not hold the lease key (then
    /// `LeaseLost` follows if we thought we did).
    Updated { ok: bool, record: Record },
    /// A request (or renewal) failed: no etcd endpoint answered.
    Unreachable { why: String },
    /// A request failed otherwise: etcd refused it, its reply made no sense, or a key
    /// holds a value that is not a record.
    Failed { why: String },
}

/// The owner's side: queues requests without blocking. Dropping it stops the agent.
#[derive(Debug)]
pub struct WitnessHandle {
    requests: mpsc::SyncSender<WitnessRequest>,
}

impl WitnessHandle {
    /// Queues `request`; never blocks.
    pub fn send(&self, request: WitnessRequest) -> Result<(), WitnessError> {
        self.requests.try_send(request).map_err(|e| match e {
            TrySendError::Full(_) => WitnessError::AgentBusy(REQUESTS_MAX),
            TrySendError::Disconnected(_) => WitnessError::AgentStopped,
        })
    }
}

/// Starts agent threads.
pub struct WitnessAgent;

impl WitnessAgent {
    /// An agent for the pair whose keys live under `prefix` on the etcd `endpoints`
    /// (see [`super::parse_witness`]), holding leases of `ttl_secs` (etcd may grant
    /// more), with the default [`EtcdTimeouts`].
    pub fn spawn(
        endpoints: Vec<String>,
        prefix: &str,
        ttl_secs: u64,
    ) -> Result<(WitnessHandle, async_channel::Receiver<WitnessEvent>), WitnessError> {
        let etcd = Etcd::new(endpoints, EtcdTimeouts::default())?;
        WitnessAgent::spawn_with(etcd, Keys::new(prefix), ttl_secs)
    }

    /// [`WitnessAgent::spawn`] with a client built by the caller.
    pub fn spawn_with(
        etcd: Etcd,
        keys: Keys,
        ttl_secs: u64,
    ) -> Result<(WitnessHandle, async_channel::Receiver<WitnessEvent>), WitnessError> {
        let (requests, inbox) = mpsc::sync_channel(REQUESTS_MAX);
        let (events, outbox) = async_channel::bounded(EVENTS_MAX);
        let agent = Agent {
            etcd,
            keys,
            ttl_secs,
            inbox,
            events,
            held: None,
        };
        std::thread::Builder::new()
            .name("tandem-witness".into())
            .spawn(move || agent.run())
            .map_err(|e| WitnessError::Spawn(e.to_string()))?;
        Ok((WitnessHandle { requests }, outbox))
    }
}

/// The lease the agent holds.
struct Held {
    lease: LeaseId,
    /// The TTL etcd granted (and renews to).
    ttl: Duration,
    /// Send time of the last request that granted or renewed the lease, plus `ttl`.
    valid_until: Instant,
    /// When to send the next renewal.
    renew_at: Instant,
    /// Why the last renewal failed, if one failed since the last success (only the
    /// first failure of a streak is reported; the last is quoted in `LeaseLost`).
    last_error: Option<String>,
}

impl Held {
    /// Limits for a request made while holding: nothing may run past `valid_until`
    /// (then the lease may be gone and the owner must hear so), and no attempt on one
    /// endpoint may take more than a third of the TTL, so a member that hangs leaves
    /// time to retry, on the next endpoint, before the lease runs out.
    fn bound(&self) -> Bound {
        Bound {
            deadline: Some(self.valid_until),
            attempt_max: Some(self.ttl / 3),
        }
    }
}

struct Agent {
    etcd: Etcd,
    keys: Keys,
    ttl_secs: u64,
    inbox: mpsc::Receiver<WitnessRequest>,
    events: async_channel::Sender<WitnessEvent>,
    held: Option<Held>,
}

impl Agent {
    fn run(mut self) {
        loop {
            if self.events.is_closed() {
                return;
            }
            // Renewals first: a stream of requests must not starve them. Due at
            // `renew_at`, or at `valid_until` at the latest, to report the loss then
            // and not at the next retry.
            let due = self.held.as_ref().map(|h| h.renew_at.min(h.valid_until));
            if due.is_some_and(|due| Instant::now() >= due) {
                self.renew();
                continue;
            }
            let next = match due {
                None => self
                    .inbox
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
                Some(due) => self
                    .inbox
                    .recv_timeout(due.saturating_duration_since(Instant::now())),
            };
            match next {
                Ok(request) => self.handle(request),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn handle(&mut self, request: WitnessRequest) {
        match request {
            WitnessRequest::Campaign { record, expect } => self.campaign(record, expect),
            WitnessRequest::Update { record } => self.update(record),
            WitnessRequest::Resign => {
                if let Some(h) = self.held.take() {
                    if let Err(e) = self.etcd.resign(h.lease) {
                        self.report_error(e);
                    }
                }
            }
        }
    }

    fn campaign(&mut self, record: Record, expect: Expect) {
        if let Some(h) = &self.held {
            let valid_until = h.valid_until;
            self.emit(WitnessEvent::Won { valid_until });
            return;
        }
        match self
            .etcd
            .campaign(&self.keys, record, expect, self.ttl_secs)
        {
            Ok(Campaign::Won {
                lease,
                granted_at,
                ttl,
            }) => {
                let valid_until = granted_at + ttl;
                tracing::info!(%record, lease = lease.0, ?ttl, "witness: won the lease");
                self.held = Some(Held {
                    lease,
                    ttl,
                    valid_until,
                    renew_at: granted_at + ttl / 3,
                    last_error: None,
                });
                self.emit(WitnessEvent::Won { valid_until });
            }
            Ok(Campaign::Lost { holder, state }) => {
                self.emit(WitnessEvent::Lost { holder, state });
            }
            Err(e) => self.report_error(e),
        }
    }

    fn update(&mut self, record: Record) {
        let Some(h) = &self.held else {
            self.emit(WitnessEvent::Updated { ok: false, record });
            return;
        };
        let (lease, bound) = (h.lease, h.bound());
        match self.etcd.update_by(&self.keys, lease, record, bound) {
            Ok(true) => self.emit(WitnessEvent::Updated { ok: true, record }),
            Ok(false) => {
                self.emit(WitnessEvent::Updated { ok: false, record });
                // The lease key is gone or someone else's: whatever our lease still
                // guards, it is not the right to serve. Nobody else uses the lease.
                self.held = None;
                let _ = self.etcd.revoke(lease);
                self.lease_lost("the lease key is no longer attached to our lease".into());
            }
            Err(e) => {
                self.report_error(e);
                self.check_expired();
            }
        }
    }

    /// Renews the held lease once (its time has come), or reports it lost if
    /// `valid_until` has passed.
    fn renew(&mut self) {
        if self.check_expired() {
            return;
        }
        let Some(h) = &self.held else { return };
        let (lease, ttl, valid_until, bound) = (h.lease, h.ttl, h.valid_until, h.bound());
        let sent_at = Instant::now();
        match self.etcd.keep_alive_by(lease, bound) {
            Ok(Some(renewed_ttl)) => {
                if Instant::now() >= valid_until {
                    // Through, but too late: the owner has already stopped trusting the
                    // lease. Say it is lost and free it for the other node.
                    self.held = None;
                    let _ = self.etcd.revoke(lease);
                    self.lease_lost("the renewal was answered only after valid_until".into());
                    return;
                }
                let valid_until = sent_at + renewed_ttl;
                if let Some(h) = &mut self.held {
                    h.ttl = renewed_ttl;
                    h.valid_until = valid_until;
                    h.renew_at = sent_at + renewed_ttl / 3;
                    h.last_error = None;
                }
                self.emit(WitnessEvent::Renewed { valid_until });
            }
            Ok(None) => {
                self.held = None;
                self.lease_lost("etcd no longer knows the lease (expired or revoked)".into());
            }
            Err(e) => {
                let why = e.to_string();
                let first = match &mut self.held {
                    Some(h) => h.last_error.replace(why.clone()).is_none(),
                    None => false,
                };
                if self.check_expired() {
                    return;
                }
                tracing::warn!(error = %why, "witness: lease renewal failed; retrying");
                if first {
                    self.report_error(e);
                }
                // Retry soon, but not in a tight loop against an endpoint that refuses
                // connections at once: at most ~10 attempts per TTL.
                if let Some(h) = &mut self.held {
                    h.renew_at = Instant::now() + (ttl / 10).min(Duration::from_millis(200));
                }
            }
        }
    }

    /// If the held lease's `valid_until` has passed: LeaseLost, idle; true if so.
    fn check_expired(&mut self) -> bool {
        let why = match &self.held {
            Some(h) if Instant::now() >= h.valid_until => match &h.last_error {
                Some(e) => format!("could not renew the lease before valid_until: {e}"),
                None => "could not renew the lease before valid_until".to_string(),
            },
            _ => return false,
        };
        self.held = None;
        self.lease_lost(why);
        true
    }

    fn lease_lost(&self, why: String) {
        tracing::warn!(%why, "witness: lease lost");
        self.emit(WitnessEvent::LeaseLost { why });
    }

    fn report_error(&self, e: WitnessError) {
        let why = e.to_string();
        self.emit(match e {
            WitnessError::Unreachable(_) => WitnessEvent::Unreachable { why },
            _ => WitnessEvent::Failed { why },
        });
    }

    fn emit(&self, event: WitnessEvent) {
        if matches!(event, WitnessEvent::Renewed { .. }) && self.events.len() >= EVENTS_MAX / 2 {
            return;
        }
        if let Err(async_channel::TrySendError::Full(event)) = self.events.try_send(event) {
            tracing::error!(?event, "witness: event queue full; event dropped");
        }
    }
}
