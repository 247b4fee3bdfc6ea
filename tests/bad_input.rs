//! Hostile and broken clients: each gets an ERROR frame (where STOMP allows one; an
//! OpenWire client gets a ConnectionError) and is
//! disconnected, while a well-behaved client connected the whole time keeps working.
//! Also the start-up refusals: a locked data directory, a port in use, a bad config.

mod support;

use std::ffi::OsStr;
use std::net::{Shutdown, TcpListener};
use std::time::Duration;

use support::{encode, Broker, BrokerOpts, ReadEnd, Rng, Stomp};

/// How long the broker may take to answer a violation with ERROR and close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(20);

/// The well-behaved client: a producer and a consumer of `/queue/bystander`,
/// connected before the bad client arrives and checked after it is gone. Bad clients
/// aim their frames at the same queue, so a bad frame that slipped through would be
/// the next message the bystander sees.
struct Bystander {
    producer: Stomp,
    consumer: Stomp,
    round: u32,
}

impl Bystander {
    fn new(broker: &Broker) -> Bystander {
        Bystander::login(broker, None)
    }

    fn login(broker: &Broker, login: Option<(&str, &str)>) -> Bystander {
        let producer = Stomp::connect_login(broker.port, login);
        let mut consumer = Stomp::connect_login(broker.port, login);
        consumer.subscribe("by", "/queue/bystander", "auto");
        let mut b = Bystander {
            producer,
            consumer,
            round: 0,
        };
        b.round_trip();
        b
    }

    /// Sends one message with a receipt and receives exactly it.
    fn round_trip(&mut self) {
        self.round += 1;
        let body = format!("ping-{}", self.round);
        let receipt = format!("r-{}", self.round);
        self.producer
            .send_receipted("/queue/bystander", body.as_bytes(), &receipt);
        let m = self.consumer.expect_message();
        assert_eq!(
            m.body_str(),
            body,
            "bystander got an unexpected message: {m:?}"
        );
    }
}

/// The connection gets exactly one frame, an ERROR with a `message` header, then EOF.
fn assert_error_then_closed(conn: &mut Stomp, what: &str) {
    let frames = conn
        .frames_until_closed(CLOSE_TIMEOUT)
        .unwrap_or_else(|seen| {
            panic!("{what}: connection still open after {CLOSE_TIMEOUT:?}; frames seen: {seen:?}")
        });
    assert_eq!(
        frames.len(),
        1,
        "{what}: expected one ERROR frame, got {frames:?}"
    );
    assert_eq!(frames[0].command, "ERROR", "{what}: {frames:?}");
    assert!(
        frames[0].header("message").is_some_and(|m| !m.is_empty()),
        "{what}: ERROR without a message header: {frames:?}"
    );
}

fn opts_with(f: impl FnOnce(&mut BrokerOpts)) -> BrokerOpts {
    let mut o = BrokerOpts::default();
    f(&mut o);
    o
}

#[test]
fn garbage_bytes_get_error_and_close() {
    let broker = Broker::start(BrokerOpts::default());
    let mut by = Bystander::new(&broker);
    let mut bad = Stomp::tcp(broker.port);
    // A TLS ClientHello's first bytes, then binary noise: a client on the wrong port.
    let mut bytes = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    bytes.extend((0..2048).map(|_| rng.next() as u8));
    bytes.extend_from_slice(b"\n\n\0");
    let _ = bad.try_send_raw(&bytes);
    assert_error_then_closed(&mut bad, "garbage");
    by.round_trip();
}

#[test]
fn frame_over_max_frame_size_gets_error_and_close() {
    let broker = Broker::start(opts_with(|o| o.max_frame_size = Some("64kb".into())));
    let mut by = Bystander::new(&broker);
    let mut bad = Stomp::connect(broker.port);
    // Under the limit is fine...
    bad.send_receipted("/queue/big", &vec![b'a'; 32 * 1024], "small");
    // ...twice the limit is not.
    let body = vec![b'b'; 128 * 1024];
    let _ = bad.try_send_raw(&encode(
        "SEND",
        &[("destination", "/queue/bystander")],
        &body,
    ));
    assert_error_then_closed(&mut bad, "frame over maxFrameSize");
    by.round_trip();
}

#[test]
fn header_line_over_max_header_size_gets_error_and_close() {
    let broker = Broker::start(opts_with(|o| o.max_header_size = Some("1kb".into())));
    let mut by = Bystander::new(&broker);
    let mut bad = Stomp::connect(broker.port);
    let big = "x".repeat(2048);
    let _ = bad.try_send_raw(&encode(
        "SEND",
        &[("destination", "/queue/bystander"), ("x-big", &big)],
        b"BAD",
    ));
    assert_error_then_closed(&mut bad, "header over maxHeaderSize");
    by.round_trip();
}

#[test]
fn too_many_headers_get_error_and_close() {
    let broker = Broker::start(opts_with(|o| o.max_headers = Some(16)));
    let mut by = Bystander::new(&broker);
    let mut bad = Stomp::connect(broker.port);
    let names: Vec<String> = (0..40).map(|i| format!("x-h{i}")).collect();
    let mut headers: Vec<(&str, &str)> = vec![("destination", "/queue/bystander")];
    headers.extend(names.iter().map(|n| (n.as_str(), "v")));
    let _ = bad.try_send_raw(&encode("SEND", &headers, b"BAD"));
    assert_error_then_closed(&mut bad, "too many headers");
    by.round_trip();
}

#[test]
fn truncated_frame_then_close_is_dropped() {
    let broker = Broker::start(BrokerOpts::default());
    let mut by = Bystander::new(&broker);
    let mut bad = Stomp::connect(broker.port);
    bad.send_raw(b"SEND\ndestination:/queue/bystander\ncontent-length:100\n\nBAD-only-part");
    bad.stream.shutdown(Shutdown::Write).unwrap();
    // The client went away mid-frame: no ERROR is required, but the broker closes its
    // side and must not deliver the partial frame (the bystander's next message is
    // its own ping).
    let frames = bad
        .frames_until_closed(CLOSE_TIMEOUT)
        .unwrap_or_else(|seen| {
            panic!("broker did not close a half-closed connection; frames seen: {seen:?}")
        });
    assert!(frames.iter().all(|f| f.command == "ERROR"), "{frames:?}");
    by.round_trip();
}

#[test]
fn unknown_command_gets_error_and_close() {
    let broker = Broker::start(BrokerOpts::default());
    let mut by = Bystander::new(&broker);
    let mut bad = Stomp::connect(broker.port);
    bad.send_raw(b"FROBNICATE\ndestination:/queue/bystander\n\nBAD\0");
    assert_error_then_closed(&mut bad, "unknown command");
    by.round_trip();
}

#[test]
fn invalid_header_escape_in_1_2_gets_error_and_close() {
    let broker = Broker::start(BrokerOpts::default());
    let mut by = Bystander::new(&broker);
    let mut bad = Stomp::connect(broker.port); // negotiates 1.2
    bad.send_raw(b"SEND\ndestination:/queue/bystander\nx-bad:tab\\there\n\nBAD\0");
    assert_error_then_closed(&mut bad, "invalid escape \\t");
    by.round_trip();
}

#[test]
fn frame_before_connect_gets_error_and_close() {
    let broker = Broker::start(BrokerOpts::default());
    let mut by = Bystander::new(&broker);
    let mut bad = Stomp::tcp(broker.port);
    bad.send_raw(b"SEND\ndestination:/queue/bystander\nreceipt:nope\n\nBAD\0");
    assert_error_then_closed(&mut bad, "SEND before CONNECT");
    by.round_trip();
}

#[test]
fn wrong_credentials_get_error_and_close() {
    let opts = opts_with(|o| o.users = vec![("app".into(), "s3cret".into())]);
    let broker = Broker::start(opts);
    let mut by = Bystander::login(&broker, Some(("app", "s3cret")));
    for (what, headers) in [
        (
            "wrong passcode",
            vec![("login", "app"), ("passcode", "guess")],
        ),
        (
            "unknown user",
            vec![("login", "mallory"), ("passcode", "s3cret")],
        ),
        ("no login", vec![]),
    ] {
        let (mut bad, reply) = Stomp::connect_with(broker.port, &headers);
        let reply = reply.unwrap_or_else(|e| panic!("{what}: no reply to CONNECT: {e:?}"));
        assert_eq!(reply.command, "ERROR", "{what}: {reply:?}");
        assert!(reply.header("message").is_some(), "{what}: {reply:?}");
        assert!(
            !reply.body_str().contains("s3cret") && !reply.body_str().contains("guess"),
            "{what}: a password is echoed back: {reply:?}"
        );
        assert_eq!(bad.frames_until_closed(CLOSE_TIMEOUT), Ok(vec![]), "{what}");
        by.round_trip();
    }
}

/// The client promises heart-beats every 500 ms and then sends nothing: the broker
/// must consider it dead. (The brief said `0,500`, but in STOMP that means "I send
/// none, you send every 500 ms", so silence is then legal; that case is the next test.)
#[test]
fn silent_client_that_promised_heart_beats_is_closed() {
    let broker = Broker::start(BrokerOpts::default());
    let mut by = Bystander::new(&broker);
    let (mut bad, reply) = Stomp::connect_with(broker.port, &[("heart-beat", "500,0")]);
    let connected = reply.expect("CONNECTED");
    assert_eq!(connected.command, "CONNECTED", "{connected:?}");
    let hb = connected
        .header("heart-beat")
        .expect("CONNECTED without heart-beat");
    let (_sx, sy) = hb.split_once(',').expect("heart-beat sx,sy");
    let sy: u64 = sy.parse().expect("heart-beat sy");
    assert!(
        sy > 0,
        "broker does not want the heart-beats the client offered: {hb}"
    );
    // Negotiated: the client sends every max(500, sy) ms; allow a few intervals.
    let interval = Duration::from_millis(sy.max(500));
    let frames = bad
        .frames_until_closed(interval * 3 + Duration::from_secs(10))
        .unwrap_or_else(|seen| panic!("silent client still connected; frames seen: {seen:?}"));
    assert!(frames.iter().all(|f| f.command == "ERROR"), "{frames:?}");
    by.round_trip();
}

/// `heart-beat:0,500`: the client sends none and wants the broker's every 500 ms (or
/// the broker's own minimum). Silence is legal: the broker sends heart-beats and keeps
/// the connection open.
#[test]
fn client_asking_for_heart_beats_receives_them() {
    let broker = Broker::start(BrokerOpts::default());
    let (mut c, reply) = Stomp::connect_with(broker.port, &[("heart-beat", "0,500")]);
    let connected = reply.expect("CONNECTED");
    let hb = connected
        .header("heart-beat")
        .expect("CONNECTED without heart-beat");
    let sx: u64 = hb.split_once(',').expect("sx,sy").0.parse().expect("sx");
    assert!(sx > 0, "broker offers no heart-beats: {hb}");
    let interval = Duration::from_millis(sx.max(500));
    assert_eq!(
        c.read_frame(interval * 3 + Duration::from_secs(2)),
        Err(ReadEnd::Timeout)
    );
    assert!(
        c.heartbeats_seen >= 2,
        "{} heart-beats seen in 3 intervals",
        c.heartbeats_seen
    );
    c.send_receipted("/queue/hb", b"still here", "alive");
}

/// A TCP connection that never sends CONNECT is closed after the connect timeout
/// (`connectAttemptTimeout`, 5 s by default).
#[test]
fn connection_that_sends_nothing_is_closed() {
    let broker = Broker::start(BrokerOpts::default());
    let mut by = Bystander::new(&broker);
    let mut idle = Stomp::tcp(broker.port);
    let frames = idle
        .frames_until_closed(Duration::from_secs(45))
        .unwrap_or_else(|seen| {
            panic!("idle connection still open after 45 s; frames seen: {seen:?}")
        });
    assert!(frames.iter().all(|f| f.command == "ERROR"), "{frames:?}");
    by.round_trip();
}

/// The pre-login deadline (`connectAttemptTimeout`, short here) closes a connection
/// that sends nothing, half a CONNECT, or an opening too short to tell its protocol,
/// while a logged-in client is served throughout.
#[test]
fn connections_that_do_not_log_in_in_time_are_closed() {
    let broker = Broker::start(opts_with(|o| o.connect_attempt_timeout_ms = Some(1_000)));
    let mut by = Bystander::new(&broker);
    let mut silent = Stomp::tcp(broker.port);
    let mut half = Stomp::tcp(broker.port);
    half.try_send_raw(b"CONNECT\naccept-version:1.2\nhost:lo")
        .expect("half a CONNECT written");
    // Kind 1 but too few bytes to tell an OpenWire WireFormatInfo from a replication
    // Hello: the sniffer waits for more, but only until the deadline.
    let mut undecided = Stomp::tcp(broker.port);
    undecided
        .try_send_raw(&[0x00, 0x00, 0x01, 0x00, 0x01])
        .expect("opening bytes written");
    for (conn, what) in [
        (&mut silent, "silent"),
        (&mut half, "half a CONNECT"),
        (&mut undecided, "undecided opening"),
    ] {
        let frames = conn
            .frames_until_closed(CLOSE_TIMEOUT)
            .unwrap_or_else(|seen| {
                panic!("{what}: still open after {CLOSE_TIMEOUT:?}; frames seen: {seen:?}")
            });
        assert!(frames.is_empty(), "{what}: {frames:?}");
        by.round_trip();
    }
    // A client that logs in in time stays.
    let mut late = Stomp::connect(broker.port);
    late.send_receipted("/queue/late", b"x", "r-late");
    by.round_trip();
}

/// Before login, a frame is bounded by `maxLoginFrameSize` (64 KiB by default), not
/// `maxFrameSize` (64 MiB here): refused with an ERROR as soon as its size is known.
/// After login the same frame is fine.
#[test]
fn a_pre_login_frame_over_the_login_bound_gets_error_and_close() {
    let broker = Broker::start(BrokerOpts::default());
    let mut by = Bystander::new(&broker);
    let body = vec![b'c'; 100 * 1024];
    // Declared by content-length: refused before the body is buffered.
    let mut declared = Stomp::tcp(broker.port);
    let _ = declared.try_send_raw(&encode(
        "CONNECT",
        &[("accept-version", "1.2"), ("content-length", "102400")],
        &body,
    ));
    assert_error_then_closed(&mut declared, "pre-login CONNECT with a 100 KiB body");
    by.round_trip();
    // No content-length: refused once 64 KiB arrived without the end of the frame.
    let mut streamed = Stomp::tcp(broker.port);
    let _ = streamed.try_send_raw(&encode(
        "SEND",
        &[("destination", "/queue/bystander")],
        &body,
    ));
    assert_error_then_closed(&mut streamed, "pre-login SEND with a 100 KiB body");
    by.round_trip();
    // Logged in, 100 KiB is an ordinary message.
    let mut ok = Stomp::connect(broker.port);
    ok.send_receipted("/queue/big-after-login", &body, "big");
    by.round_trip();
}

#[test]
fn second_broker_on_same_data_dir_refuses_to_start() {
    let broker = Broker::start(BrokerOpts::default());
    let mut by = Bystander::new(&broker);
    let other = support::free_port();
    let config = broker.dir().join("second.xml");
    std::fs::write(
        &config,
        support::config_xml(&broker.opts, other, &broker.data_dir()),
    )
    .unwrap();
    let (status, stderr) = run_tandem(&config, Some(&broker.data_dir()));
    assert!(
        !status.success(),
        "second broker started on a locked data dir:\n{stderr}"
    );
    let data = broker.data_dir().display().to_string();
    assert!(
        stderr.contains("lock") && stderr.contains(&data),
        "stderr should name the lock and {data}:\n{stderr}"
    );
    by.round_trip();
}

#[test]
fn port_in_use_exits_with_one_line_reason() {
    // Held by a plain socket...
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    assert_refused_on_port(port);
    drop(holder);
    // ...and by another broker (glommio listeners set SO_REUSEPORT: a second broker
    // must not silently share the port).
    let broker = Broker::start(BrokerOpts::default());
    let mut by = Bystander::new(&broker);
    assert_refused_on_port(broker.port);
    by.round_trip();
}

fn assert_refused_on_port(port: u16) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.xml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        support::config_xml(&BrokerOpts::default(), port, &data),
    )
    .unwrap();
    let (status, stderr) = run_tandem(&config, None);
    assert!(
        !status.success(),
        "broker started on port {port} in use:\n{stderr}"
    );
    let reason: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tandem:"))
        .collect();
    assert_eq!(
        reason.len(),
        1,
        "expected one 'tandem: ...' line:\n{stderr}"
    );
    assert!(
        reason[0].contains(&port.to_string()),
        "reason should name the port: {}",
        reason[0]
    );
}

#[test]
fn bad_config_value_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.xml");
    let xml = support::config_xml(&BrokerOpts::default(), 61613, &dir.path().join("data"))
        .replace(r#"limit="8 mb""#, r#"limit="lots""#);
    let line = 1 + xml
        .lines()
        .position(|l| l.contains(r#"limit="lots""#))
        .unwrap();
    std::fs::write(&config, xml).unwrap();
    let (status, stderr) = run_tandem(&config, None);
    assert!(
        !status.success(),
        "broker accepted limit=\"lots\":\n{stderr}"
    );
    let want = format!("{}:{line}:", config.display());
    assert!(
        stderr.contains(&want),
        "stderr should contain {want:?}:\n{stderr}"
    );
    assert!(
        stderr.contains("lots"),
        "stderr should quote the value:\n{stderr}"
    );
}

fn run_tandem(
    config: &std::path::Path,
    data_dir: Option<&std::path::Path>,
) -> (std::process::ExitStatus, String) {
    let mut args: Vec<&OsStr> = vec![OsStr::new("--config"), config.as_os_str()];
    if let Some(d) = data_dir {
        args.push(OsStr::new("--data-dir"));
        args.push(d.as_os_str());
    }
    support::run_to_exit(&args, Duration::from_secs(30))
}

/// Malformed frames after a good CONNECT, and bad CONNECTs: each connection gets an
/// ERROR and is closed; nothing reaches the bystander's queue.
#[test]
fn malformed_frames_each_get_error_and_close() {
    let broker = Broker::start(BrokerOpts::default());
    let mut by = Bystander::new(&broker);
    let after_connect: &[(&str, &[u8])] = &[
        (
            "content-length not a number",
            b"SEND\ndestination:/queue/bystander\ncontent-length:abc\n\nBAD\0",
        ),
        (
            "negative content-length",
            b"SEND\ndestination:/queue/bystander\ncontent-length:-1\n\nBAD\0",
        ),
        (
            "no NUL where content-length ends",
            b"SEND\ndestination:/queue/bystander\ncontent-length:3\n\nBADX\0",
        ),
        (
            "header line without a colon",
            b"SEND\ndestination:/queue/bystander\nnocolon\n\nBAD\0",
        ),
        ("SEND without destination", b"SEND\nreceipt:x\n\nBAD\0"),
        (
            "SUBSCRIBE without id (1.2)",
            b"SUBSCRIBE\ndestination:/queue/bystander\n\n\0",
        ),
        (
            "NUL inside the headers",
            b"SEND\ndestination:/queue/by\0stander\n\nBAD\0",
        ),
    ];
    for (what, bytes) in after_connect {
        let mut bad = Stomp::connect(broker.port);
        let _ = bad.try_send_raw(bytes);
        assert_error_then_closed(&mut bad, what);
        by.round_trip();
    }
    let connects: &[(&str, &[u8])] = &[
        (
            "unsupported version",
            b"CONNECT\naccept-version:9.9\nhost:localhost\n\n\0",
        ),
        (
            "malformed heart-beat",
            b"CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:soon\n\n\0",
        ),
    ];
    for (what, bytes) in connects {
        let mut bad = Stomp::tcp(broker.port);
        bad.send_raw(bytes);
        assert_error_then_closed(&mut bad, what);
        by.round_trip();
    }
}

/// Refusals ActiveMQ treats as non-fatal (COMMIT/ABORT of an unknown transaction, ACK
/// of an unknown message, UNSUBSCRIBE of an unknown id) get an ERROR, and the
/// connection stays open and usable, as with ActiveMQ.
#[test]
fn non_fatal_refusals_get_error_and_keep_the_connection() {
    let broker = Broker::start(BrokerOpts::default());
    let mut c = Stomp::connect(broker.port);
    let cases: &[(&str, &[u8])] = &[
        (
            "COMMIT of an unknown transaction",
            b"COMMIT\ntransaction:never-begun\n\n\0",
        ),
        (
            "ABORT of an unknown transaction",
            b"ABORT\ntransaction:never-begun\n\n\0",
        ),
        ("ACK of an unknown message", b"ACK\nid:no-such-ack\n\n\0"),
        (
            "UNSUBSCRIBE of an unknown id",
            b"UNSUBSCRIBE\nid:no-such-sub\n\n\0",
        ),
    ];
    for (i, (what, bytes)) in cases.iter().enumerate() {
        c.send_raw(bytes);
        let f = c
            .read_frame(CLOSE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{what}: no reply: {e:?}"));
        assert_eq!(f.command, "ERROR", "{what}: {f:?}");
        assert!(f.header("message").is_some(), "{what}: {f:?}");
        c.send_receipted("/queue/still-open", b"ok", &format!("ok-{i}"));
    }
}

// ---------------------------------------------------------------------------------
// OpenWire (JMS clients): a malformed stream closes that connection only.

mod openwire {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use bytes::BytesMut;
    use tandem::protocol::openwire::{encode, Command, Decoder, WireFormatInfo};

    use super::support::{free_port, Broker, BrokerOpts, Rng};
    use super::{Bystander, CLOSE_TIMEOUT};

    /// Connects to the broker's `tcp://` connector and sends a valid WireFormatInfo.
    fn open(broker: &Broker) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", broker.opts.openwire_port.unwrap())).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut out = BytesMut::new();
        encode(
            &Command::WireFormatInfo(WireFormatInfo::tandem(1 << 20)),
            &mut out,
        )
        .unwrap();
        s.write_all(&out).unwrap();
        s
    }

    /// Reads until the broker closes; returns the command types it sent. Panics if the
    /// connection is still open after [`CLOSE_TIMEOUT`].
    fn until_closed(s: &mut TcpStream, what: &str) -> Vec<&'static str> {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let mut buf = BytesMut::new();
        let mut seen = Vec::new();
        let mut decoder = Decoder::default();
        loop {
            while let Ok(Some(c)) = decoder.decode(&mut buf) {
                seen.push(c.name());
            }
            assert!(
                Instant::now() < deadline,
                "{what}: connection still open after {CLOSE_TIMEOUT:?}; seen {seen:?}"
            );
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => return seen,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return seen,
            }
        }
    }

    fn broker(max_frame_size: Option<&str>) -> Broker {
        Broker::start(BrokerOpts {
            openwire_port: Some(free_port()),
            max_frame_size: max_frame_size.map(str::to_owned),
            ..BrokerOpts::default()
        })
    }

    /// The broker's handshake, then (because the stream is lost) a ConnectionError
    /// saying why, then EOF.
    fn assert_handshake_error_close(seen: &[&str], what: &str) {
        assert_eq!(
            seen,
            ["WireFormatInfo", "BrokerInfo", "ConnectionError"],
            "{what}"
        );
    }

    #[test]
    fn garbage_after_the_wire_format_closes_the_connection() {
        let broker = broker(None);
        let mut by = Bystander::new(&broker);
        let mut bad = open(&broker);
        let mut rng = Rng(0x5eed_0f0f);
        let mut garbage: Vec<u8> = vec![0x00, 0x00, 0x00, 0x40, 0x1c];
        garbage.extend((0..64).map(|_| rng.next() as u8));
        let _ = bad.write_all(&garbage);
        let seen = until_closed(&mut bad, "garbage");
        assert_handshake_error_close(&seen, "garbage");
        by.round_trip();
    }

    #[test]
    fn frame_over_max_frame_size_closes_the_connection() {
        let broker = broker(Some("64kb"));
        let mut by = Bystander::new(&broker);
        let mut bad = open(&broker);
        // The size prefix alone is enough: refused before any body is buffered.
        let _ = bad.write_all(&[0x00, 0x02, 0x00, 0x00, 0x1c, 0x00, 0x00]);
        let seen = until_closed(&mut bad, "oversized frame");
        assert_handshake_error_close(&seen, "oversized frame");
        by.round_trip();
    }

    /// A JMS connection that negotiated its wire format but never sends ConnectionInfo
    /// (never logs in) is closed at the pre-login deadline.
    #[test]
    fn a_connection_that_never_sends_connection_info_is_closed() {
        let broker = Broker::start(BrokerOpts {
            openwire_port: Some(free_port()),
            connect_attempt_timeout_ms: Some(1_000),
            ..BrokerOpts::default()
        });
        let mut by = Bystander::new(&broker);
        let mut lurker = open(&broker);
        let seen = until_closed(&mut lurker, "no ConnectionInfo");
        assert_eq!(seen, ["WireFormatInfo", "BrokerInfo"], "no ConnectionInfo");
        by.round_trip();
    }

    /// Before ConnectionInfo a frame is bounded by `maxLoginFrameSize` (64 KiB), not
    /// the connector's `maxFrameSize` (64 MiB): a 1 MiB size prefix is refused at once.
    #[test]
    fn a_pre_login_frame_over_the_login_bound_closes_the_connection() {
        let broker = broker(None);
        let mut by = Bystander::new(&broker);
        let mut bad = open(&broker);
        let _ = bad.write_all(&[0x00, 0x10, 0x00, 0x00, 0x1c, 0x00, 0x00]);
        let seen = until_closed(&mut bad, "1 MiB frame before login");
        assert_handshake_error_close(&seen, "1 MiB frame before login");
        by.round_trip();
    }

    #[test]
    fn unknown_command_type_closes_the_connection() {
        let broker = broker(None);
        let mut by = Bystander::new(&broker);
        let mut bad = open(&broker);
        // Type 13 does not exist (Java skipped it).
        let _ = bad.write_all(&[0x00, 0x00, 0x00, 0x06, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00]);
        let seen = until_closed(&mut bad, "unknown type");
        assert_handshake_error_close(&seen, "unknown type");
        by.round_trip();
    }

    /// Every version from 1 up is served (negotiated down); 0 and below are not
    /// versions.
    #[test]
    fn an_unsupported_wire_format_version_closes_the_connection() {
        let broker = broker(None);
        let mut by = Bystander::new(&broker);
        for version in [0, -7] {
            let mut bad =
                TcpStream::connect(("127.0.0.1", broker.opts.openwire_port.unwrap())).unwrap();
            bad.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut wfi = WireFormatInfo::tandem(1 << 20);
            wfi.version = version;
            let mut out = BytesMut::new();
            encode(&Command::WireFormatInfo(wfi), &mut out).unwrap();
            let _ = bad.write_all(&out);
            let what = format!("version {version}");
            let seen = until_closed(&mut bad, &what);
            assert_eq!(seen, ["WireFormatInfo"], "{what}");
        }
        by.round_trip();
    }
}
