//! OpenWire (JMS client) connections: the OpenWire session and codec plugged into the
//! shared connection loop ([`super::conn`]). The decoder frames by size, bounded by
//! the connector's `maxFrameSize`; the session writes Tandem's WireFormatInfo as soon
//! as the connection starts; keep-alives are KeepAliveInfo commands. Until a
//! ConnectionInfo is accepted (the login) the connection has a deadline and its frames
//! are bounded by the connector's pre-login bound, not `maxFrameSize`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;

use crate::broker::{Event, Router};
use crate::protocol::openwire::session::{Action, Session, SessionContext};
use crate::protocol::openwire::{Command, Decoder, Encoder, KeepAliveInfo, OpenWireError};
use crate::protocol::unix_now_ms;
use crate::rt::net::{ReadHalf, WriteHalf};

use super::conn::{self, LoopAction, Wire};
use super::connector::PreLogin;

/// The OpenWire session as the connection loop drives it.
struct OpenWire {
    session: Session<Router>,
    encoder: Encoder,
    /// Posts what the session still has to say once closed (advisories).
    router: Router,
    /// The connector's `maxFrameSize`, the decoder's bound once logged in.
    max_frame_bytes: usize,
    /// A ConnectionInfo was accepted (sticky: a later RemoveInfo does not restart the
    /// login deadline).
    logged_in: bool,
}

impl Wire for OpenWire {
    type Item = Command;
    type Error = OpenWireError;
    type Decoder = Decoder;
    const NAME: &'static str = "OpenWire";

    fn decode(decoder: &mut Decoder, buf: &mut BytesMut) -> Result<Option<Command>, OpenWireError> {
        decoder.decode(buf)
    }

    fn on_item(&mut self, command: Command, decoder: &mut Decoder) {
        self.session.on_command(command);
        // The client's WireFormatInfo fixes both for the rest of the connection.
        let (version, stack_traces) = (self.session.version(), self.session.stack_trace_enabled());
        decoder.set_version(version);
        decoder.set_stack_trace_enabled(stack_traces);
        self.encoder = Encoder::new(version, stack_traces);
        if !self.logged_in && self.session.has_connection() {
            self.logged_in = true;
            decoder.set_max_frame_bytes(self.max_frame_bytes);
        }
    }

    fn on_decode_error(&mut self, e: OpenWireError) {
        self.session.on_decode_error(e);
    }

    fn on_event(&mut self, event: Event) {
        self.session.on_event(event);
    }

    /// Nothing waits for the socket write (JMS clients acknowledge themselves).
    fn on_written(&mut self, _upto: u64) {}

    fn on_receive_timeout(&mut self) {
        self.session.on_receive_timeout();
    }

    fn on_closed(&mut self) {
        self.session.on_closed();
        for action in self.session.take_actions() {
            if let Action::Post { shard, request } = action {
                self.router.post(shard, request);
            }
        }
    }

    fn is_established(&self) -> bool {
        self.session.is_negotiated()
    }

    fn is_logged_in(&self) -> bool {
        self.logged_in
    }

    fn units_emitted(&self) -> u64 {
        0
    }

    fn drain(&mut self, out: &mut BytesMut, actions: &mut Vec<LoopAction>) {
        for action in self.session.take_actions() {
            match action {
                Action::Write(command) => {
                    if let Err(e) = self.encoder.encode(&command, out) {
                        // Only a value the negotiated layout cannot carry gets here (a
                        // string over 64 KiB, a type the version lacks); the command is
                        // dropped, the stream stays sound.
                        tracing::warn!(conn = ?self.session.conn(), command = command.name(), error = %e, "OpenWire command not encodable; dropped");
                    }
                }
                Action::Post { shard, request } => {
                    actions.push(LoopAction::Post { shard, request })
                }
                Action::Negotiated {
                    send_every,
                    receive_timeout,
                } => actions.push(LoopAction::Timers {
                    send_every,
                    receive_timeout,
                }),
                Action::DeadlineChanged => actions.push(LoopAction::DeadlineChanged),
                Action::PauseReading => actions.push(LoopAction::PauseReading),
                Action::ResumeReading => actions.push(LoopAction::ResumeReading),
                Action::Close => actions.push(LoopAction::Close),
                Action::Evict(conn) => self.router.post_event(Event::Evict { conn }),
            }
        }
    }

    fn deadline(&self) -> Option<Duration> {
        let at = self.session.next_deadline_ms()?;
        Some(Duration::from_millis(at.saturating_sub(unix_now_ms())))
    }

    fn on_deadline(&mut self) {
        self.session.on_tick();
    }

    fn encode_keep_alive(&self, out: &mut BytesMut) {
        let keep_alive = Command::KeepAliveInfo(KeepAliveInfo::default());
        if let Err(e) = self.encoder.encode(&keep_alive, out) {
            debug_assert!(false, "KeepAliveInfo always encodes: {e}");
        }
    }
}

/// Runs one OpenWire connection (accepted by [`super::connector`]) until it ends.
pub(super) async fn run_connection(
    rd: ReadHalf,
    wr: WriteHalf,
    peer: SocketAddr,
    router: Router,
    boot_nanos: u64,
    limits: PreLogin,
) {
    let max_frame_bytes = limits.max_frame_bytes;
    let (conn_id, events) = router.register();
    let settings = router.settings().clone();
    let ctx = SessionContext {
        conn: conn_id,
        shard_count: router.shard_count(),
        settings: settings.clone(),
        registries: router.registries().clone(),
        boot_id: router.boot_id().to_owned(),
        boot_nanos,
        peer: peer.to_string(),
        max_frame_bytes,
    };
    let wire = OpenWire {
        session: Session::new(ctx, router.clone()),
        encoder: Encoder::default(),
        router: router.clone(),
        max_frame_bytes,
        logged_in: false,
    };
    conn::run(
        rd,
        wr,
        peer,
        router,
        conn_id,
        events,
        wire,
        Decoder::new(limits.login_frame_bytes()),
        limits.deadline,
    )
    .await;
}
