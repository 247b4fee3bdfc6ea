//! The connection loop over real sockets, against a one-shard fake broker core that
//! completes every request, delivers sends to a matching subscriber, and records acks.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::{
    BrokerSettings, ConnId, Delivery, Destination, Event, MeshMsg, ReplyTo, Request, Router, SubKey,
};
use crate::rt::channel::mesh;
use crate::rt::exec::{self, ExecutorSpec};
use crate::rt::net::{connect, BoundListener, ReadHalf, WriteHalf};
use crate::rt::{sleep, spawn_local as spawn};

use super::super::serve_connector as serve_stomp;
use super::super::ConnectorPolicy;

/// What the fake core saw.
#[derive(Default)]
struct FakeCore {
    subs: HashMap<Destination, SubKey>,
    acked: Vec<u64>,
    closed: Vec<ConnId>,
    next_seq: u64,
}

fn handle(router: &Router, core: &RefCell<FakeCore>, msg: MeshMsg) {
    match msg {
        MeshMsg::Request(req) => {
            let reply = match req {
                Request::Subscribe { sub, spec, reply } => {
                    core.borrow_mut().subs.insert(spec.destination, sub);
                    Some(reply)
                }
                Request::Send { msg, reply } => {
                    let target = {
                        let mut c = core.borrow_mut();
                        c.next_seq += 1;
                        c.subs
                            .get(&msg.destination)
                            .copied()
                            .map(|s| (s, c.next_seq))
                    };
                    if let Some((sub, seq)) = target {
                        router.post_event(Event::Deliver(Delivery {
                            sub,
                            destination: msg.destination.clone(),
                            msg,
                            seq,
                            redelivered: false,
                            redelivery_count: 0,
                        }));
                    }
                    Some(reply)
                }
                Request::Ack { seqs, reply, .. } => {
                    core.borrow_mut().acked.extend(seqs);
                    reply
                }
                Request::ConnectionClosed { conn } => {
                    core.borrow_mut().closed.push(conn);
                    None
                }
                Request::ForgetOutcome { .. }
                | Request::SetPrefetch { .. }
                | Request::Written { .. } => None,
                Request::CreateTemp { reply, .. } | Request::DeleteTemp { reply, .. } => {
                    Some(reply)
                }
                Request::QueryOutcome { reply, .. } => Some(reply),
                Request::Barrier { reply }
                | Request::Browse { reply, .. }
                | Request::Unsubscribe { reply, .. }
                | Request::Commit { reply, .. }
                | Request::Prepare { reply, .. }
                | Request::RecordOutcome { reply, .. }
                | Request::Resolve { reply, .. } => Some(reply),
                Request::Nack { reply, .. } => reply,
            };
            if let Some(reply) = reply {
                router.post_event(Event::Done {
                    reply,
                    result: Ok(()),
                });
            }
        }
        MeshMsg::Event(event) => {
            let conn = match &event {
                Event::Deliver(d) => d.sub.conn,
                Event::Evict { conn } => *conn,
                Event::BrowseEnd { sub, .. } => sub.conn,
                Event::Done { reply, .. } => match reply.to {
                    ReplyTo::Conn(c) => c,
                    ReplyTo::Shard(_) => return,
                },
            };
            let _ = router.deliver_local(conn, event);
        }
    }
}

/// Runs `test` on a fresh executor with a listening one-shard broker.
fn with_broker<F, Fut>(settings: BrokerSettings, test: F)
where
    F: FnOnce(SocketAddr, Rc<RefCell<FakeCore>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    with_broker_policy(settings, |_| {}, test)
}

/// [`with_broker`] with the connector's policy adjusted by `adjust`.
fn with_broker_policy<F, Fut>(
    settings: BrokerSettings,
    adjust: impl FnOnce(&mut ConnectorPolicy) + Send + 'static,
    test: F,
) where
    F: FnOnce(SocketAddr, Rc<RefCell<FakeCore>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let spec = ExecutorSpec {
        name: "stomp-net-test".into(),
        cpu: None,
        io_memory_bytes: 256 * 1024,
        ring_depth: 128,
    };
    let handle = exec::start(&spec, move || async move {
        let ends = mesh::<MeshMsg>(1, 1024).pop().expect("one shard");
        let core = Rc::new(RefCell::new(FakeCore::default()));
        let cell: Rc<OnceCell<Router>> = Rc::new(OnceCell::new());
        let (c2, core2) = (cell.clone(), core.clone());
        let outbox = ends.connect(move |msg| {
            if let Some(router) = c2.get() {
                handle(router, &core2, msg);
            }
        });
        let router = Router::new(outbox, Arc::new(settings), "test".into());
        let _ = cell.set(router.clone());
        let bound = BoundListener::bind("127.0.0.1:0".parse().expect("addr"), 16).expect("bind");
        let addr = bound.local_addr().expect("local addr");
        let mut policy = ConnectorPolicy::new("test", None, 64 * 1024 * 1024);
        adjust(&mut policy);
        let policy = Arc::new(policy);
        spawn(serve_stomp(bound.into_listener(), router, policy));
        test(addr, core).await;
    })
    .expect("start executor");
    handle.join().expect("test executor");
}

struct Client {
    rd: ReadHalf,
    wr: WriteHalf,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let (rd, wr) = connect(addr).await.expect("connect");
        Client {
            rd,
            wr,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, raw: &str) {
        self.wr.write_all(raw.as_bytes()).await.expect("write");
    }

    /// Reads more bytes; None on EOF. Fails the test after 5 s of silence.
    async fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 4096];
        let read = async { Some(self.rd.read(&mut chunk).await) };
        let timeout = async {
            sleep(Duration::from_secs(5)).await;
            None
        };
        match futures_lite::future::or(read, timeout).await {
            None => panic!(
                "no reply within 5 s; have {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Some(Ok(0)) | Some(Err(_)) => None,
            Some(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(())
            }
        }
    }

    /// The next frame (without its NUL, leading heart-beat EOLs skipped), or None on EOF.
    async fn frame(&mut self) -> Option<String> {
        loop {
            let skip = self.buf.iter().take_while(|&&b| b == b'\n').count();
            self.buf.drain(..skip);
            if let Some(end) = self.buf.iter().position(|&b| b == 0) {
                let f: Vec<u8> = self.buf.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&f[..end]).into_owned());
            }
            self.fill().await?;
        }
    }

    async fn expect_eof(&mut self) {
        while self.fill().await.is_some() {
            assert!(
                self.buf.iter().all(|&b| b == b'\n'),
                "expected EOF, got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }
}

#[test]
fn connect_subscribe_send_receive_disconnect() {
    with_broker(BrokerSettings::default(), |addr, core| async move {
        let mut c = Client::connect(addr).await;
        c.send("CONNECT\naccept-version:1.2\nhost:h\n\n\0").await;
        let connected = c.frame().await.expect("CONNECTED");
        assert!(
            connected.starts_with("CONNECTED\nversion:1.2\nserver:Tandem/"),
            "{connected}"
        );
        c.send("SUBSCRIBE\nid:0\ndestination:/queue/a\nreceipt:s\n\n\0")
            .await;
        assert_eq!(
            c.frame().await.as_deref(),
            Some("RECEIPT\nreceipt-id:s\n\n")
        );
        c.send("SEND\ndestination:/queue/a\nreceipt:r\nk:v\n\nhi\0")
            .await;
        let f1 = c.frame().await.expect("frame");
        let f2 = c.frame().await.expect("frame");
        let (msg, receipt) = if f1.starts_with("MESSAGE") {
            (f1, f2)
        } else {
            (f2, f1)
        };
        assert_eq!(receipt, "RECEIPT\nreceipt-id:r\n\n");
        assert!(
            msg.starts_with(
                "MESSAGE\ndestination:/queue/a\nmessage-id:ID\\ctest-0-1\nsubscription:0\n"
            ),
            "{msg}"
        );
        // Sent without content-length: a text message, delivered without it too.
        assert!(msg.ends_with("k:v\n\nhi"), "{msg}");
        c.send("DISCONNECT\nreceipt:d\n\n\0").await;
        assert_eq!(
            c.frame().await.as_deref(),
            Some("RECEIPT\nreceipt-id:d\n\n")
        );
        c.expect_eof().await;
        // Auto ack after the write; the connection unregistered.
        sleep(Duration::from_millis(20)).await;
        let core = core.borrow();
        assert_eq!(core.acked, vec![1]);
        assert_eq!(core.closed.len(), 1);
    });
}

#[test]
fn garbage_gets_an_error_and_a_close() {
    with_broker(BrokerSettings::default(), |addr, _| async move {
        let mut c = Client::connect(addr).await;
        c.send("HELLO\n\n\0").await;
        let e = c.frame().await.expect("ERROR");
        assert!(e.starts_with("ERROR\nmessage:Malformed frame\n"), "{e}");
        c.expect_eof().await;

        // A frame before CONNECT, on a second connection: the first did not disturb it.
        let mut c = Client::connect(addr).await;
        c.send("SEND\ndestination:/queue/a\n\n\0").await;
        let e = c.frame().await.expect("ERROR");
        assert!(
            e.starts_with("ERROR\nmessage:Connection not established\n"),
            "{e}"
        );
        c.expect_eof().await;
    });
}

#[test]
fn heart_beats_are_sent_and_silence_times_out() {
    let settings = BrokerSettings {
        heartbeat: Duration::from_millis(100),
        ..BrokerSettings::default()
    };
    with_broker(settings, |addr, _| async move {
        // The client wants a heart-beat every 100 ms and sends none.
        let mut c = Client::connect(addr).await;
        c.send("CONNECT\naccept-version:1.1\nheart-beat:0,100\n\n\0")
            .await;
        let connected = c.frame().await.expect("CONNECTED");
        assert!(connected.contains("heart-beat:100,0\n"), "{connected}");
        c.buf.clear();
        c.fill().await.expect("heart-beat");
        assert_eq!(c.buf, b"\n");

        // The client promises one every 100 ms and goes silent: ERROR, then close.
        let mut c = Client::connect(addr).await;
        c.send("CONNECT\naccept-version:1.1\nheart-beat:100,0\n\n\0")
            .await;
        let connected = c.frame().await.expect("CONNECTED");
        assert!(connected.contains("heart-beat:0,100\n"), "{connected}");
        let e = c.frame().await.expect("ERROR");
        assert!(e.starts_with("ERROR\nmessage:Heart-beat timeout\n"), "{e}");
        c.expect_eof().await;
    });
}

#[test]
fn connect_timeout_closes_silent_connections() {
    let policy = |p: &mut ConnectorPolicy| p.connect_attempt_timeout = Duration::from_millis(100);
    with_broker_policy(BrokerSettings::default(), policy, |addr, _| async move {
        let mut c = Client::connect(addr).await;
        c.expect_eof().await;
    });
}
