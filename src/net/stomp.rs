//! STOMP connections: the STOMP session and codec plugged into the shared connection
//! loop ([`super::conn`]). Keep-alives are heart-beat EOLs; written frames are what
//! auto-acknowledges deliveries (`Session::on_written`). Until CONNECT succeeds the
//! decoder takes frames up to the connector's pre-login bound only, and the login
//! deadline runs.

use std::net::SocketAddr;

use bytes::BytesMut;

use crate::broker::{BrokerSettings, Event, Router};
use crate::protocol::stomp::session::{Action, Session, SessionContext};
use crate::protocol::stomp::{encode, encode_heartbeat, DecodedItem, Decoder, Limits, StompError};
use crate::rt::net::{ReadHalf, WriteHalf};

use super::conn::{self, LoopAction, Wire};
use super::connector::PreLogin;

/// The STOMP session as the connection loop drives it.
struct Stomp {
    session: Session<Router>,
    /// The connector's `maxFrameSize`: the decoder's bound once connected.
    max_frame_bytes: usize,
    /// The decoder's bound was raised to `max_frame_bytes`.
    raised: bool,
}

impl Wire for Stomp {
    type Item = DecodedItem;
    type Error = StompError;
    type Decoder = Decoder;
    const NAME: &'static str = "STOMP";

    fn decode(
        decoder: &mut Decoder,
        buf: &mut BytesMut,
    ) -> Result<Option<DecodedItem>, StompError> {
        decoder.decode(buf)
    }

    fn on_item(&mut self, item: DecodedItem, decoder: &mut Decoder) {
        if let DecodedItem::Frame(frame) = item {
            self.session.on_frame(frame);
            decoder.set_version(self.session.version());
            if !self.raised && self.session.is_connected() {
                self.raised = true;
                decoder.set_max_frame_bytes(self.max_frame_bytes);
            }
        }
    }

    fn on_decode_error(&mut self, e: StompError) {
        self.session.on_decode_error(e);
    }

    fn on_event(&mut self, event: Event) {
        self.session.on_event(event);
    }

    fn on_written(&mut self, upto: u64) {
        self.session.on_written(upto);
    }

    fn on_receive_timeout(&mut self) {
        self.session.on_heartbeat_timeout();
    }

    fn on_closed(&mut self) {
        self.session.on_closed();
    }

    fn is_established(&self) -> bool {
        self.session.is_connected()
    }

    fn units_emitted(&self) -> u64 {
        self.session.frames_emitted()
    }

    fn drain(&mut self, out: &mut BytesMut, actions: &mut Vec<LoopAction>) {
        for action in self.session.take_actions() {
            match action {
                Action::Write(frame) => encode(&frame, self.session.version(), out),
                Action::Post { shard, request } => {
                    actions.push(LoopAction::Post { shard, request })
                }
                Action::Negotiated {
                    send_every,
                    receive_timeout,
                    ..
                } => actions.push(LoopAction::Timers {
                    send_every,
                    receive_timeout,
                }),
                Action::PauseReading => actions.push(LoopAction::PauseReading),
                Action::ResumeReading => actions.push(LoopAction::ResumeReading),
                Action::Close => actions.push(LoopAction::Close),
            }
        }
    }

    fn encode_keep_alive(&self, out: &mut BytesMut) {
        encode_heartbeat(out);
    }
}

/// Runs one STOMP connection (accepted by [`super::connector`]) until it ends.
pub(super) async fn run_connection(
    rd: ReadHalf,
    wr: WriteHalf,
    peer: SocketAddr,
    router: Router,
    boot_nanos: u64,
    limits: PreLogin,
) {
    let (conn_id, events) = router.register();
    let settings = router.settings().clone();
    let ctx = SessionContext {
        conn: conn_id,
        shard_count: router.shard_count(),
        settings: settings.clone(),
        registries: router.registries().clone(),
        boot_nanos,
    };
    let session = Stomp {
        session: Session::new(ctx, router.clone()),
        max_frame_bytes: limits.max_frame_bytes,
        raised: false,
    };
    let decoder = Decoder::new(decoder_limits(&settings, limits.login_frame_bytes()));
    conn::run(
        rd,
        wr,
        peer,
        router,
        conn_id,
        events,
        session,
        decoder,
        limits.deadline,
    )
    .await;
}

fn decoder_limits(settings: &BrokerSettings, max_frame_bytes: usize) -> Limits {
    Limits {
        max_frame_bytes,
        max_header_bytes: settings.max_header_bytes,
        max_headers: settings.max_headers,
        ..Limits::default()
    }
}

#[cfg(test)]
#[path = "stomp_tests.rs"]
mod tests;
