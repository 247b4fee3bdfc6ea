//! OpenWire end to end: the real ActiveMQ 5.17 JMS client (Debian's
//! `libactivemq-java`) against the real broker, through `tests/java/OpenWireSmoke.java`
//! (compiled once per test run with `javac`), plus raw-protocol checks spoken with
//! Tandem's own codec, and STOMP <-> JMS interoperation on one queue.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use support::{free_port, poll_until, Broker, BrokerOpts, Stomp};
use tandem::protocol::openwire::{
    encode, Command, ConnectionId, ConnectionInfo, Decoder, Header, ShutdownInfo, WireFormatInfo,
};

/// How long one Java program may run.
const JAVA_TIMEOUT: Duration = Duration::from_secs(120);

/// The client jars (Debian paths) the program needs.
const JARS: &[&str] = &[
    "activemq-client.jar",
    // The marshallers of OpenWire v2..v8 (v1 and v9..v12 are in the client jar).
    "activemq-openwire-legacy.jar",
    "geronimo-jms_1.1_spec.jar",
    "geronimo-j2ee-management-1.1-spec.jar",
    "hawtbuf.jar",
    "slf4j-api.jar",
    "slf4j-nop.jar",
];

/// The compiled program: a class directory and the classpath to run it with.
struct Jms {
    _classes: tempfile::TempDir,
    classpath: String,
}

fn jms() -> &'static Jms {
    static JMS: OnceLock<Jms> = OnceLock::new();
    JMS.get_or_init(|| {
        let jars: Vec<String> = JARS
            .iter()
            .map(|j| format!("/usr/share/java/{j}"))
            .collect();
        for j in &jars {
            assert!(
                std::path::Path::new(j).exists(),
                "{j} is missing: install Debian's libactivemq-java and a JDK (tools/test does)"
            );
        }
        let classes = tempfile::tempdir().expect("tempdir");
        let source =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/java/OpenWireSmoke.java");
        let jar_path = jars.join(":");
        let out = Process::new("javac")
            .arg("-cp")
            .arg(&jar_path)
            .arg("-d")
            .arg(classes.path())
            .arg(&source)
            .output()
            .expect("run javac (install a JDK: default-jdk-headless)");
        assert!(
            out.status.success(),
            "javac failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let classpath = format!("{}:{jar_path}", classes.path().display());
        Jms {
            _classes: classes,
            classpath,
        }
    })
}

/// Runs `OpenWireSmoke args...`; returns its stdout once it exited 0 and printed a last
/// line "OK". Panics with its output otherwise (or after [`JAVA_TIMEOUT`]).
fn run_java(args: &[&str]) -> String {
    let jms = jms();
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("stdout");
    let mut child = Process::new("java")
        .arg("-cp")
        .arg(&jms.classpath)
        .arg("OpenWireSmoke")
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("create stdout file"))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run java");
    let mut status = None;
    poll_until(JAVA_TIMEOUT, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("java {args:?} still running after {JAVA_TIMEOUT:?}; output so far:\n{output}");
    };
    assert!(
        status.success() && output.lines().last() == Some("OK"),
        "java {args:?} failed ({status}):\n{output}"
    );
    output
}

fn broker_with_tcp() -> Broker {
    Broker::start(BrokerOpts {
        openwire_port: Some(free_port()),
        ..BrokerOpts::default()
    })
}

fn tcp_url(broker: &Broker) -> String {
    format!(
        "tcp://127.0.0.1:{}",
        broker.opts.openwire_port.expect("tcp connector")
    )
}

// ---------------------------------------------------------------------------------
// The real JMS client

/// Persistent text messages with typed properties through a queue, then through a
/// topic with its subscriber created first: bodies, properties, headers and order.
#[test]
fn jms_client_round_trips_a_queue_and_a_topic() {
    let broker = broker_with_tcp();
    let started = Instant::now();
    run_java(&["smoke", &tcp_url(&broker), "50"]);
    eprintln!("smoke with 50 messages took {:?}", started.elapsed());
}

/// Pull consumers (prefetch 0: receive(t) and receiveNoWait on an empty queue answer
/// null), CLIENT_ACKNOWLEDGE past the prefetch, local transactions with rollback,
/// temporary queues, durable subscriptions and selectors on typed properties.
#[test]
fn jms_client_features() {
    let broker = broker_with_tcp();
    run_java(&["features", &tcp_url(&broker)]);
}

/// Request/reply across connections: the responder learns the requester's temporary
/// queue from the broker's advisories (also when it connects after the queue was
/// made), without which the JMS client refuses to send to a JMSReplyTo.
#[test]
fn jms_request_reply_through_a_temporary_queue() {
    let broker = broker_with_tcp();
    run_java(&["requestreply", &tcp_url(&broker)]);
}

/// JMS clients pinned to every older OpenWire version (`wireFormat.version=N`, N = 1..11)
/// negotiate down to N with Tandem and then work with that version's layouts: persistent
/// text and bytes messages with properties through a queue, a topic, a committed and a
/// rolled-back transaction. The client checks its negotiated version is N, and the
/// broker's log shows it negotiated N too.
#[test]
fn jms_clients_pinned_to_older_openwire_versions() {
    let broker = Broker::start(BrokerOpts {
        openwire_port: Some(free_port()),
        rust_log: Some("info,tandem::protocol::openwire::session=debug".into()),
        ..BrokerOpts::default()
    });
    let versions: Vec<i32> = (1..=11).collect();
    let list: Vec<String> = versions.iter().map(i32::to_string).collect();
    let out = run_java(&["versions", &tcp_url(&broker), &list.join(",")]);
    let reported: Vec<&str> = out.lines().filter(|l| l.starts_with("VERSION ")).collect();
    let expected: Vec<String> = versions
        .iter()
        .map(|v| format!("VERSION {v} negotiated={v}"))
        .collect();
    assert_eq!(reported, expected, "client side:\n{out}");
    // Server side: one negotiation per connection, at the client's version.
    let log = broker.log();
    let negotiated: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("OpenWire version negotiated"))
        .collect();
    eprintln!("broker side:\n{}", negotiated.join("\n"));
    for v in &versions {
        assert!(
            negotiated
                .iter()
                .any(|l| l.contains(&format!("client_version={v} version={v} "))
                    || l.ends_with(&format!("client_version={v} version={v}"))),
            "no negotiation at v{v} in the broker log:\n{}",
            negotiated.join("\n")
        );
    }
    assert!(
        !negotiated.iter().any(|l| l.contains("version=12")),
        "a connection negotiated v12:\n{}",
        negotiated.join("\n")
    );
}

/// The STOMP connector serves JMS clients too (connections are sniffed).
#[test]
fn jms_client_works_on_the_stomp_port() {
    let broker = Broker::start(BrokerOpts::default());
    run_java(&["smoke", &format!("tcp://127.0.0.1:{}", broker.port), "3"]);
}

/// A STOMP producer and a JMS consumer share a queue: a frame with `content-length`
/// arrives as a BytesMessage and one with `amq-msg-type:text` as a TextMessage (as in
/// ActiveMQ), with the headers as string properties and JMS headers mapped.
#[test]
fn stomp_producer_to_jms_consumer() {
    let broker = broker_with_tcp();
    let mut stomp = broker.client();
    stomp.send_frame(
        "SEND",
        &[
            ("destination", "/queue/interop"),
            ("persistent", "true"),
            ("amq-msg-type", "text"),
            ("correlation-id", "c-1"),
            ("type", "greeting"),
            ("colour", "blue"),
            ("receipt", "r1"),
        ],
        "hello from STOMP".as_bytes(),
    );
    stomp.expect_receipt("r1");
    stomp.send_frame(
        "SEND",
        &[
            ("destination", "/queue/interop"),
            ("priority", "7"),
            ("receipt", "r2"),
        ],
        b"raw bytes",
    );
    stomp.expect_receipt("r2");
    let out = run_java(&["receive", &tcp_url(&broker), "interop", "2"]);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("MSG ")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0],
        "MSG text hello from STOMP colour=blue persistent=true priority=4 correlation=c-1 type=greeting",
        "{out}"
    );
    assert_eq!(
        lines[1], "MSG bytes raw bytes  persistent=false priority=7 correlation=null type=null",
        "{out}"
    );
}

/// A JMS producer and a STOMP consumer share a queue: the text body arrives as is,
/// typed properties as text headers, JMS headers as their STOMP headers.
#[test]
fn jms_producer_to_stomp_consumer() {
    let broker = broker_with_tcp();
    let mut stomp = broker.client();
    // The smoke program's queue name is its own; drive a JMS send by hand instead:
    // a raw OpenWire producer is enough to check the mapping.
    let mut ow = RawOpenWire::connect(broker.opts.openwire_port.unwrap());
    ow.handshake();
    ow.connection_info("jms-to-stomp", None);
    let mut msg = tandem::protocol::openwire::Message {
        kind: tandem::protocol::openwire::MessageKind::Text,
        header: Header::new(3, true),
        destination: Some(tandem::protocol::openwire::Destination::queue("tostomp")),
        message_id: Some(tandem::protocol::openwire::MessageId {
            text_view: None,
            producer_id: Some(tandem::protocol::openwire::ProducerId {
                connection_id: "ID:raw-1".into(),
                session_id: 1,
                value: 1,
            }),
            producer_sequence_id: 1,
            broker_sequence_id: 0,
        }),
        persistent: true,
        correlation_id: Some("corr".into()),
        jms_type: Some("kind".into()),
        timestamp: 1_700_000_000_000,
        ..Default::default()
    };
    msg.set_text(Some("héllo")).unwrap();
    let props: tandem::protocol::openwire::PrimitiveMap = [
        ("n", tandem::protocol::openwire::PrimitiveValue::Int(42)),
        (
            "s",
            tandem::protocol::openwire::PrimitiveValue::string("str"),
        ),
    ]
    .into_iter()
    .collect();
    msg.set_properties(&props).unwrap();
    ow.send(&Command::Message(Box::new(msg)));
    let reply = ow.read_command();
    assert!(
        matches!(&reply, Command::Response(r) if r.correlation_id == 3),
        "{reply:?}"
    );
    stomp.subscribe("s1", "/queue/tostomp", "auto");
    let m = stomp.expect_message();
    assert_eq!(m.body_str(), "héllo");
    assert_eq!(m.header("message-id"), Some("ID:raw-1:1:1:1"), "{m:?}");
    assert_eq!(m.header("correlation-id"), Some("corr"), "{m:?}");
    assert_eq!(m.header("type"), Some("kind"), "{m:?}");
    assert_eq!(m.header("n"), Some("42"), "{m:?}");
    assert_eq!(m.header("s"), Some("str"), "{m:?}");
    assert_eq!(m.header("persistent"), Some("true"), "{m:?}");
    assert_eq!(m.header("timestamp"), Some("1700000000000"), "{m:?}");
}

// ---------------------------------------------------------------------------------
// Raw protocol

/// A blocking OpenWire connection spoken with Tandem's own codec.
struct RawOpenWire {
    stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
}

impl RawOpenWire {
    fn connect(port: u16) -> RawOpenWire {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        RawOpenWire {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::default(),
        }
    }

    fn send(&mut self, c: &Command) {
        let mut out = BytesMut::new();
        encode(c, &mut out).expect("encode");
        self.stream.write_all(&out).expect("write");
    }

    /// The next command; panics on EOF or after 20 s.
    fn read_command(&mut self) -> Command {
        self.try_read_command()
            .unwrap_or_else(|| panic!("connection closed while waiting for a command"))
    }

    /// The next command, or `None` at EOF; panics after 20 s.
    fn try_read_command(&mut self) -> Option<Command> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(c) = self.decoder.decode(&mut self.buf).expect("decode") {
                return Some(c);
            }
            assert!(Instant::now() < deadline, "no command within 20 s");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    /// Our WireFormatInfo; expects the broker's and its BrokerInfo.
    fn handshake(&mut self) {
        let mut wfi = WireFormatInfo::tandem(1 << 20);
        wfi.options.insert(
            "ProviderName",
            tandem::protocol::openwire::PrimitiveValue::string("raw"),
        );
        self.send(&Command::WireFormatInfo(wfi));
        let first = self.read_command();
        assert!(matches!(first, Command::WireFormatInfo(_)), "{first:?}");
        let second = self.read_command();
        assert!(matches!(second, Command::BrokerInfo(_)), "{second:?}");
    }

    /// ConnectionInfo (command 1) with `client_id`; returns the broker's answer.
    fn connection_info(&mut self, client_id: &str, login: Option<(&str, &str)>) -> Command {
        self.send(&Command::ConnectionInfo(ConnectionInfo {
            header: Header::new(1, true),
            connection_id: Some(ConnectionId::new(format!("ID:raw-{client_id}"))),
            client_id: Some(client_id.into()),
            user_name: login.map(|l| l.0.to_owned()),
            password: login.map(|l| l.1.to_owned()),
            manageable: true,
            client_master: true,
            ..ConnectionInfo::default()
        }));
        self.read_command()
    }

    /// Reads until EOF (commands seen so far returned); panics after 20 s.
    fn until_closed(&mut self) -> Vec<Command> {
        let mut seen = Vec::new();
        while let Some(c) = self.try_read_command() {
            if !matches!(c, Command::KeepAliveInfo(_)) {
                seen.push(c);
            }
        }
        seen
    }
}

#[test]
fn wrong_password_gets_a_security_exception_and_a_close() {
    let broker = Broker::start(BrokerOpts {
        users: vec![("alice".into(), "secret".into())],
        openwire_port: Some(free_port()),
        ..BrokerOpts::default()
    });
    let port = broker.opts.openwire_port.unwrap();
    let mut ow = RawOpenWire::connect(port);
    ow.handshake();
    let reply = ow.connection_info("c1", Some(("alice", "wrong")));
    match &reply {
        Command::ExceptionResponse(e) => {
            let ex = e.exception.as_ref().unwrap();
            assert_eq!(
                ex.class_name.as_deref(),
                Some("java.lang.SecurityException")
            );
            assert_eq!(e.correlation_id, 1);
        }
        other => panic!("expected an ExceptionResponse, got {other:?}"),
    }
    assert!(ow.until_closed().is_empty());
    let mut good = RawOpenWire::connect(port);
    good.handshake();
    let ok = good.connection_info("c2", Some(("alice", "secret")));
    assert!(
        matches!(&ok, Command::Response(r) if r.correlation_id == 1),
        "{ok:?}"
    );
}

#[test]
fn a_client_id_is_held_by_one_connection_at_a_time() {
    let broker = broker_with_tcp();
    let port = broker.opts.openwire_port.unwrap();
    let mut first = RawOpenWire::connect(port);
    first.handshake();
    assert!(matches!(
        first.connection_info("same", None),
        Command::Response(_)
    ));
    let mut second = RawOpenWire::connect(port);
    second.handshake();
    // Another connection id with the same client id.
    second.send(&Command::ConnectionInfo(ConnectionInfo {
        header: Header::new(1, true),
        connection_id: Some(ConnectionId::new("ID:raw-other")),
        client_id: Some("same".into()),
        ..ConnectionInfo::default()
    }));
    match second.read_command() {
        Command::ExceptionResponse(e) => assert_eq!(
            e.exception.unwrap().class_name.as_deref(),
            Some("javax.jms.InvalidClientIDException")
        ),
        other => panic!("expected InvalidClientIDException, got {other:?}"),
    }
    // Once the first connection is gone the id is free again.
    first.send(&Command::ShutdownInfo(ShutdownInfo::default()));
    assert!(first.until_closed().is_empty());
    let freed = poll_until(Duration::from_secs(10), || {
        let mut third = RawOpenWire::connect(port);
        third.handshake();
        matches!(third.connection_info("same", None), Command::Response(_))
    });
    assert!(freed, "client id still held after its connection closed");
}

#[test]
fn keep_alive_is_answered_when_asked_for() {
    let broker = broker_with_tcp();
    let mut ow = RawOpenWire::connect(broker.opts.openwire_port.unwrap());
    ow.handshake();
    ow.send(&Command::KeepAliveInfo(
        tandem::protocol::openwire::KeepAliveInfo {
            header: Header::new(0, true),
        },
    ));
    let reply = ow.read_command();
    assert!(
        matches!(&reply, Command::KeepAliveInfo(k) if !k.header.response_required),
        "{reply:?}"
    );
    // And STOMP still works on the same broker.
    let mut stomp = Stomp::connect(broker.port);
    stomp.send_receipted("/queue/after", b"x", "r");
}

/// The broker writes a KeepAliveInfo when it has been idle for 10 s (the client drops a
/// broker it has not heard from in about 70 s). The client logs in first: a connection
/// that never sends ConnectionInfo is closed at the pre-login deadline instead.
#[test]
fn an_idle_connection_gets_keep_alives() {
    let broker = broker_with_tcp();
    let mut ow = RawOpenWire::connect(broker.opts.openwire_port.unwrap());
    ow.handshake();
    let answer = ow.connection_info("idle", None);
    assert!(matches!(answer, Command::Response(_)), "{answer:?}");
    let started = Instant::now();
    let first = ow.read_command();
    let waited = started.elapsed();
    assert!(matches!(first, Command::KeepAliveInfo(_)), "{first:?}");
    assert!(
        waited > Duration::from_secs(8) && waited < Duration::from_secs(15),
        "first keep-alive after {waited:?}"
    );
}

/// A client that negotiated a 1 s inactivity period and then says nothing is dropped
/// after two of them (30 s negotiated: 60 s).
#[test]
fn a_silent_client_is_dropped() {
    let broker = broker_with_tcp();
    let mut ow = RawOpenWire::connect(broker.opts.openwire_port.unwrap());
    let mut wfi = WireFormatInfo::tandem(1 << 20);
    wfi.options.insert(
        "MaxInactivityDuration",
        tandem::protocol::openwire::PrimitiveValue::Long(1_000),
    );
    ow.send(&Command::WireFormatInfo(wfi));
    let started = Instant::now();
    let seen = ow.until_closed();
    let waited = started.elapsed();
    assert!(
        matches!(
            seen.as_slice(),
            [Command::WireFormatInfo(_), Command::BrokerInfo(_)]
        ),
        "{seen:?}"
    );
    assert!(
        waited >= Duration::from_millis(1_900) && waited < Duration::from_secs(10),
        "dropped after {waited:?}"
    );
}

/// A failover client back on a new socket before the broker noticed its old one died
/// (same client connection id, same client id) takes over: the stale connection is
/// closed (as ActiveMQ stops it) and the message its consumer held unacknowledged
/// goes to the new connection's consumer, flagged redelivered.
#[test]
fn a_reconnected_client_takes_over_its_stale_twin() {
    use tandem::protocol::openwire::{
        ConsumerId, ConsumerInfo, Destination, SessionId, SessionInfo,
    };

    let broker = broker_with_tcp();
    let port = broker.opts.openwire_port.unwrap();
    let connection_id = "ID:raw-twin";
    // Session, then a queue consumer (prefetch 10); every command wants a Response.
    let open = |ow: &mut RawOpenWire| {
        ow.handshake();
        ow.send(&Command::ConnectionInfo(ConnectionInfo {
            header: Header::new(1, true),
            connection_id: Some(ConnectionId::new(connection_id)),
            client_id: Some("twin".into()),
            ..ConnectionInfo::default()
        }));
        ow.send(&Command::SessionInfo(SessionInfo {
            header: Header::new(2, true),
            session_id: Some(SessionId {
                connection_id: connection_id.into(),
                value: 1,
            }),
        }));
        ow.send(&Command::ConsumerInfo(ConsumerInfo {
            header: Header::new(3, true),
            consumer_id: Some(ConsumerId {
                connection_id: connection_id.into(),
                session_id: 1,
                value: 1,
            }),
            destination: Some(Destination::queue("twin")),
            prefetch_size: 10,
            ..ConsumerInfo::default()
        }));
        for id in 1..=3 {
            match ow.read_command() {
                Command::Response(r) if r.correlation_id == id => {}
                other => panic!("command {id} answered with {other:?}"),
            }
        }
    };
    let next_dispatch = |ow: &mut RawOpenWire| loop {
        match ow.read_command() {
            Command::MessageDispatch(d) => return d,
            Command::KeepAliveInfo(_) => {}
            other => panic!("expected a MessageDispatch, got {other:?}"),
        }
    };

    let mut stale = RawOpenWire::connect(port);
    open(&mut stale);
    let mut stomp = Stomp::connect(broker.port);
    stomp.send_receipted("/queue/twin", b"held", "r1");
    let first = next_dispatch(&mut stale);
    assert_eq!(first.redelivery_counter, 0);
    // Not acknowledged; the client "reconnects" on a new socket with the same ids.
    let mut fresh = RawOpenWire::connect(port);
    open(&mut fresh);
    assert!(
        stale.until_closed().is_empty(),
        "the stale connection is closed without a word"
    );
    let again = next_dispatch(&mut fresh);
    let body = again
        .message
        .as_ref()
        .and_then(|m| m.content.clone())
        .expect("a message with a body");
    assert!(body.ends_with(b"held"), "{body:?}");
    assert_eq!(again.redelivery_counter, 1, "flagged redelivered");
}
