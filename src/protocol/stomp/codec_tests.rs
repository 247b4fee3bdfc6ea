//! Codec tests: exact byte vectors, every limit, every escape rule, and property tests
//! that random bytes never panic and that splitting input never changes the result.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

/// Decodes everything in `input` fed at once; stops at the first error.
fn decode_all(decoder: &mut Decoder, input: &[u8]) -> (Vec<DecodedItem>, Option<StompError>) {
    let mut buf = BytesMut::from(input);
    let mut items = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return (items, None),
            Err(e) => return (items, Some(e)),
        }
    }
}

/// Feeds `input` in chunks ending at each of `cuts`, decoding after every chunk.
fn decode_split(
    decoder: &mut Decoder,
    input: &[u8],
    cuts: &[usize],
) -> (Vec<DecodedItem>, Option<StompError>) {
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut fed = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let cut = cut.clamp(fed, input.len());
        buf.extend_from_slice(&input[fed..cut]);
        fed = cut;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => return (items, Some(e)),
            }
        }
    }
    (items, None)
}

fn one_frame(input: &[u8]) -> Frame {
    one_frame_v(input, Version::V1_2)
}

fn one_frame_v(input: &[u8], version: Version) -> Frame {
    let mut d = Decoder::default();
    d.set_version(version);
    let mut buf = BytesMut::from(input);
    let item = d.decode(&mut buf).expect("decode").expect("complete frame");
    assert!(buf.is_empty(), "left over: {buf:?}");
    match item {
        DecodedItem::Frame(f) => f,
        DecodedItem::HeartBeat => panic!("heart-beat instead of frame"),
    }
}

fn decode_err(input: &[u8], limits: Limits, version: Version) -> StompError {
    let mut d = Decoder::new(limits);
    d.set_version(version);
    let (_, err) = decode_all(&mut d, input);
    err.expect("an error")
}

fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn encoded(frame: &Frame, version: Version) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(frame, version, &mut out);
    out.to_vec()
}

// ---- Parsing each command -------------------------------------------------------------

/// Wire bytes, the command they hold, and its headers in order.
type CommandCase = (
    &'static [u8],
    Command,
    &'static [(&'static str, &'static str)],
);

#[test]
fn parses_every_command() {
    let cases: &[CommandCase] = &[
        (
            b"CONNECT\naccept-version:1.0,1.1,1.2\nhost:localhost\nlogin:a\npasscode:b\n\n\0",
            Command::Connect,
            &[
                ("accept-version", "1.0,1.1,1.2"),
                ("host", "localhost"),
                ("login", "a"),
                ("passcode", "b"),
            ],
        ),
        (
            b"STOMP\naccept-version:1.2\nhost:h\n\n\0",
            Command::Stomp,
            &[("accept-version", "1.2"), ("host", "h")],
        ),
        (
            b"SEND\ndestination:/queue/a\n\n\0",
            Command::Send,
            &[("destination", "/queue/a")],
        ),
        (
            b"SUBSCRIBE\nid:0\ndestination:/topic/t\nack:client-individual\n\n\0",
            Command::Subscribe,
            &[
                ("id", "0"),
                ("destination", "/topic/t"),
                ("ack", "client-individual"),
            ],
        ),
        (
            b"UNSUBSCRIBE\nid:0\n\n\0",
            Command::Unsubscribe,
            &[("id", "0")],
        ),
        (b"ACK\nid:12\n\n\0", Command::Ack, &[("id", "12")]),
        (b"NACK\nid:12\n\n\0", Command::Nack, &[("id", "12")]),
        (
            b"BEGIN\ntransaction:tx1\n\n\0",
            Command::Begin,
            &[("transaction", "tx1")],
        ),
        (
            b"COMMIT\ntransaction:tx1\n\n\0",
            Command::Commit,
            &[("transaction", "tx1")],
        ),
        (
            b"ABORT\ntransaction:tx1\n\n\0",
            Command::Abort,
            &[("transaction", "tx1")],
        ),
        (
            b"DISCONNECT\nreceipt:77\n\n\0",
            Command::Disconnect,
            &[("receipt", "77")],
        ),
        (
            b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0",
            Command::Connected,
            &[("version", "1.2"), ("heart-beat", "0,0")],
        ),
        (
            b"MESSAGE\nsubscription:0\nmessage-id:m1\ndestination:/queue/a\n\n\0",
            Command::Message,
            &[
                ("subscription", "0"),
                ("message-id", "m1"),
                ("destination", "/queue/a"),
            ],
        ),
        (
            b"RECEIPT\nreceipt-id:77\n\n\0",
            Command::Receipt,
            &[("receipt-id", "77")],
        ),
        (
            b"ERROR\nmessage:bad\n\n\0",
            Command::Error,
            &[("message", "bad")],
        ),
        (b"DISCONNECT\n\n\0", Command::Disconnect, &[]),
    ];
    for (bytes, command, headers) in cases {
        let f = one_frame(bytes);
        assert_eq!(f.command, *command);
        assert_eq!(f.headers, hdrs(headers));
        assert!(f.body.is_empty());
    }
}

#[test]
fn unknown_and_lowercase_commands_are_errors() {
    for input in [&b"FOO\n\n\0"[..], b"send\n\n\0", b" SEND\n\n\0", b"\0"] {
        let err = decode_err(input, Limits::default(), Version::V1_2);
        assert!(
            matches!(
                err,
                StompError::UnknownCommand(_) | StompError::MalformedFrame(_)
            ),
            "{input:?}: {err:?}"
        );
    }
    assert_eq!(
        decode_err(b"FOO\n\n\0", Limits::default(), Version::V1_2),
        StompError::UnknownCommand("FOO".into())
    );
}

// ---- Bodies ---------------------------------------------------------------------------

#[test]
fn body_with_nul_via_content_length() {
    let f = one_frame(b"SEND\ndestination:/queue/a\ncontent-length:5\n\na\0b\0c\0");
    assert_eq!(f.body, Bytes::from_static(b"a\0b\0c"));
    assert_eq!(f.header("content-length"), Some("5"));
}

#[test]
fn body_without_content_length_ends_at_first_nul() {
    let mut d = Decoder::default();
    let (items, err) = decode_all(&mut d, b"SEND\ndestination:/q\n\nhello world\0");
    assert_eq!(err, None);
    assert_eq!(
        items,
        vec![DecodedItem::Frame(
            Frame::new(Command::Send)
                .with_header("destination", "/q")
                .with_body(&b"hello world"[..])
        )]
    );
}

#[test]
fn content_length_body_must_end_in_nul() {
    let err = decode_err(
        b"SEND\ncontent-length:2\n\nabc\0",
        Limits::default(),
        Version::V1_2,
    );
    assert_eq!(err, StompError::MissingNul);
}

#[test]
fn content_length_zero_and_whitespace() {
    assert!(one_frame(b"SEND\ncontent-length:0\n\n\0").body.is_empty());
    assert_eq!(
        one_frame(b"SEND\ncontent-length: 3 \n\nabc\0").body,
        &b"abc"[..]
    );
}

#[test]
fn bad_content_length_values() {
    for v in [
        "",
        "x",
        "-1",
        "+1",
        "1.5",
        "0x10",
        "99999999999999999999999",
    ] {
        let input = format!("SEND\ncontent-length:{v}\n\n\0");
        let err = decode_err(input.as_bytes(), Limits::default(), Version::V1_2);
        assert!(
            matches!(
                err,
                StompError::BadContentLength(_) | StompError::FrameTooLarge { .. }
            ),
            "{v:?}: {err:?}"
        );
    }
}

#[test]
fn first_content_length_wins() {
    let f = one_frame(b"SEND\ncontent-length:1\ncontent-length:3\n\na\0");
    assert_eq!(f.body, &b"a"[..]);
}

#[test]
fn crlf_line_endings_in_every_version() {
    for v in Version::ALL {
        let f = one_frame_v(b"SEND\r\ndestination:/q\r\nreceipt:1\r\n\r\nbody\0", v);
        assert_eq!(f.command, Command::Send);
        assert_eq!(f.headers, hdrs(&[("destination", "/q"), ("receipt", "1")]));
        assert_eq!(f.body, &b"body"[..]);
    }
}

#[test]
fn header_values_keep_spaces_and_colons() {
    let f = one_frame_v(b"SEND\n x : a:b \n\n\0", Version::V1_1);
    assert_eq!(f.headers, hdrs(&[(" x ", " a:b ")]));
    let f = one_frame_v(b"SEND\nempty:\n\n\0", Version::V1_2);
    assert_eq!(f.header("empty"), Some(""));
}

#[test]
fn malformed_headers() {
    for input in [&b"SEND\nnocolon\n\n\0"[..], b"SEND\n:value\n\n\0"] {
        let err = decode_err(input, Limits::default(), Version::V1_2);
        assert!(matches!(err, StompError::MalformedHeader(_)), "{err:?}");
    }
    let err = decode_err(b"SEND\na:\xff\xfe\n\n\0", Limits::default(), Version::V1_2);
    assert_eq!(err, StompError::InvalidUtf8);
    let err = decode_err(b"SEND\na:b\0\n\n\0", Limits::default(), Version::V1_2);
    assert!(matches!(err, StompError::MalformedFrame(_)), "{err:?}");
    let err = decode_err(b"\rSEND\n\n\0", Limits::default(), Version::V1_2);
    assert!(matches!(err, StompError::MalformedFrame(_)), "{err:?}");
}

#[test]
fn errors_are_sticky() {
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&b"BOGUS\n\n\0SEND\n\n\0"[..]);
    let first = d.decode(&mut buf).unwrap_err();
    assert_eq!(d.decode(&mut buf).unwrap_err(), first);
    assert_eq!(
        first.to_error_frame().header("message"),
        Some("unknown command: 'BOGUS'")
    );
}

// ---- Escaping -------------------------------------------------------------------------

#[test]
fn escapes_decode_per_version() {
    let input = b"SEND\na\\cb:x\\ny\\\\z\\cw\n\n\0";
    let f = one_frame_v(input, Version::V1_2);
    assert_eq!(f.headers, hdrs(&[("a:b", "x\ny\\z:w")]));
    let f = one_frame_v(input, Version::V1_1);
    assert_eq!(f.headers, hdrs(&[("a:b", "x\ny\\z:w")]));
    let f = one_frame_v(input, Version::V1_0);
    assert_eq!(f.headers, hdrs(&[("a\\cb", "x\\ny\\\\z\\cw")]));

    // \r is 1.2 only.
    assert_eq!(
        one_frame_v(b"SEND\na:x\\ry\n\n\0", Version::V1_2).header("a"),
        Some("x\ry")
    );
    assert_eq!(
        decode_err(b"SEND\na:x\\ry\n\n\0", Limits::default(), Version::V1_1),
        StompError::InvalidEscape("\\r".into())
    );
    assert_eq!(
        one_frame_v(b"SEND\na:x\\ry\n\n\0", Version::V1_0).header("a"),
        Some("x\\ry")
    );
}

#[test]
fn undefined_escapes_are_fatal_in_1_1_and_1_2() {
    for v in [Version::V1_1, Version::V1_2] {
        for input in [
            &b"SEND\na:\\t\n\n\0"[..],
            b"SEND\na:x\\\n\n\0",
            b"SEND\n\\x:1\n\n\0",
        ] {
            let err = decode_err(input, Limits::default(), v);
            assert!(
                matches!(err, StompError::InvalidEscape(_)),
                "{v} {input:?}: {err:?}"
            );
        }
    }
    assert_eq!(
        one_frame_v(b"SEND\na:\\t\n\n\0", Version::V1_0).header("a"),
        Some("\\t")
    );
}

#[test]
fn connect_and_connected_are_never_unescaped() {
    let f = one_frame_v(b"CONNECT\nlogin:a\\nb\npasscode:p\\t\n\n\0", Version::V1_2);
    assert_eq!(f.header("login"), Some("a\\nb"));
    assert_eq!(f.header("passcode"), Some("p\\t"));
    let f = one_frame_v(b"STOMP\nlogin:a\\c\n\n\0", Version::V1_1);
    assert_eq!(f.header("login"), Some("a\\c"));
    let f = one_frame_v(b"CONNECTED\nserver:x\\y\n\n\0", Version::V1_2);
    assert_eq!(f.header("server"), Some("x\\y"));
}

#[test]
fn escaping_round_trips_per_version() {
    let nasty = "line1\nline2\rcolon:back\\slash é";
    let frame = Frame::new(Command::Send)
        .with_header("na:me\n", nasty)
        .with_header("destination", "/queue/ü")
        .with_body(&b"payload"[..]);
    for (v, expect_value) in [
        (Version::V1_2, nasty.to_string()),
        // 1.1 cannot escape CR; it goes raw and survives (not at the end of the line).
        (Version::V1_1, nasty.to_string()),
    ] {
        let f = one_frame_v(&encoded(&frame, v), v);
        assert_eq!(f.header("na:me\n"), Some(expect_value.as_str()), "{v}");
        assert_eq!(f.body, frame.body);
    }
    assert_eq!(
        encoded(&frame, Version::V1_2),
        b"SEND\nna\\cme\\n:line1\\nline2\\rcolon\\cback\\\\slash \xc3\xa9\n\
          destination:/queue/\xc3\xbc\ncontent-length:7\n\npayload\0"
            .to_vec()
    );
    assert_eq!(
        encoded(&frame, Version::V1_1),
        b"SEND\nna\\cme\\n:line1\\nline2\rcolon\\cback\\\\slash \xc3\xa9\n\
          destination:/queue/\xc3\xbc\ncontent-length:7\n\npayload\0"
            .to_vec()
    );
    // 1.0 cannot express LF/CR at all, nor ':' in a name: they become spaces rather than
    // breaking the frame (or injecting headers).
    let f = one_frame_v(&encoded(&frame, Version::V1_0), Version::V1_0);
    assert_eq!(
        f.headers,
        hdrs(&[
            ("na me ", "line1 line2 colon:back\\slash é"),
            ("destination", "/queue/ü"),
            ("content-length", "7"),
        ])
    );
}

#[test]
fn connected_is_never_escaped_on_encode() {
    let f = Frame::connected(Version::V1_2).with_header("server", "tandem:1\\x\nevil:1");
    assert_eq!(
        encoded(&f, Version::V1_2),
        b"CONNECTED\nversion:1.2\nserver:tandem:1\\x evil:1\n\n\0".to_vec()
    );
}

// ---- Encoding -------------------------------------------------------------------------

#[test]
fn encode_exact_bytes() {
    let m = Frame::message("/queue/a", "id:1")
        .with_header("subscription", "0")
        .with_header("content-length", "999") // stale: the encoder owns this header
        .with_body(&b"a\0b"[..]);
    assert_eq!(
        encoded(&m, Version::V1_2),
        b"MESSAGE\ndestination:/queue/a\nmessage-id:id\\c1\nsubscription:0\n\
          content-length:3\n\na\0b\0"
            .to_vec()
    );
    // MESSAGE always carries content-length, even when empty...
    assert_eq!(
        encoded(&Frame::message("/q", "1"), Version::V1_2),
        b"MESSAGE\ndestination:/q\nmessage-id:1\ncontent-length:0\n\n\0".to_vec()
    );
    // ...except a text message (as ActiveMQ sends it), unless its body holds a NUL.
    let mut text = Frame::message("/q", "1").with_body(&b"hi"[..]);
    text.without_content_length = true;
    assert_eq!(
        encoded(&text, Version::V1_2),
        b"MESSAGE\ndestination:/q\nmessage-id:1\n\nhi\0".to_vec()
    );
    text.body = bytes::Bytes::from_static(b"h\0i");
    assert_eq!(
        encoded(&text, Version::V1_2),
        b"MESSAGE\ndestination:/q\nmessage-id:1\ncontent-length:3\n\nh\0i\0".to_vec()
    );
    assert_eq!(
        encoded(&Frame::receipt("r1"), Version::V1_1),
        b"RECEIPT\nreceipt-id:r1\n\n\0".to_vec()
    );
    assert_eq!(
        encoded(
            &Frame::error("bad").with_body(&b"details"[..]),
            Version::V1_0
        ),
        b"ERROR\nmessage:bad\ncontent-length:7\n\ndetails\0".to_vec()
    );
    let mut out = BytesMut::new();
    Encoder::new(Version::V1_2).encode_heartbeat(&mut out);
    assert_eq!(&out[..], b"\n");
}

#[test]
fn write_decimal_edges() {
    for n in [0u64, 7, 10, 1234567890, u64::MAX] {
        let mut out = BytesMut::new();
        write_decimal(&mut out, n);
        assert_eq!(out, n.to_string().as_bytes());
    }
}

#[test]
fn encode_decode_round_trip_with_nul_body() {
    let f = Frame::new(Command::Send)
        .with_header("destination", "/queue/x")
        .with_body(vec![0u8, 1, 0, 2, 0]);
    let back = one_frame(&encoded(&f, Version::V1_2));
    assert_eq!(back.body, f.body);
}

// ---- Streaming --------------------------------------------------------------------------

const STREAM: &[u8] = b"\n\r\nCONNECT\naccept-version:1.2\n\n\0\n\
    SEND\ndestination:/q\ncontent-length:3\n\na\0c\0\r\n\n\
    SEND\r\ndestination:/q\r\n\r\nplain\0\
    DISCONNECT\nreceipt:9\n\n\0";

fn stream_expected() -> Vec<DecodedItem> {
    use DecodedItem::{Frame as F, HeartBeat as H};
    vec![
        H,
        H,
        F(Frame::new(Command::Connect).with_header("accept-version", "1.2")),
        H,
        F(Frame::new(Command::Send)
            .with_header("destination", "/q")
            .with_header("content-length", "3")
            .with_body(&b"a\0c"[..])),
        H,
        H,
        F(Frame::new(Command::Send)
            .with_header("destination", "/q")
            .with_body(&b"plain"[..])),
        F(Frame::new(Command::Disconnect).with_header("receipt", "9")),
    ]
}

#[test]
fn multiple_frames_and_heart_beats_in_one_buffer() {
    let (items, err) = decode_all(&mut Decoder::default(), STREAM);
    assert_eq!(err, None);
    assert_eq!(items, stream_expected());
}

#[test]
fn one_byte_at_a_time_gives_the_same_items() {
    let cuts: Vec<usize> = (0..STREAM.len()).collect();
    let (items, err) = decode_split(&mut Decoder::default(), STREAM, &cuts);
    assert_eq!(err, None);
    assert_eq!(items, stream_expected());
}

#[test]
fn partial_input_consumes_nothing() {
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&b"SEND\ndestination:/q\n\nhal"[..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert_eq!(buf.len(), 24);
    let mut buf2 = BytesMut::from(&b"\r"[..]);
    assert_eq!(Decoder::default().decode(&mut buf2), Ok(None));
    assert_eq!(buf2.len(), 1);
}

// ---- Limits -----------------------------------------------------------------------------

fn small_limits() -> Limits {
    Limits {
        max_frame_bytes: 100,
        max_header_bytes: 16,
        max_headers: 3,
        max_command_bytes: 12,
    }
}

#[test]
fn oversize_body_without_content_length() {
    let mut input = b"SEND\n\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 200));
    let err = decode_err(&input, small_limits(), Version::V1_2);
    assert_eq!(err, StompError::FrameTooLarge { limit: 100 });
    // Exactly at the limit is fine: 6 bytes head + 93 body + NUL = 100.
    let mut ok = b"SEND\n\n".to_vec();
    ok.extend(std::iter::repeat_n(b'x', 93));
    ok.push(0);
    let mut d = Decoder::new(small_limits());
    let (items, err) = decode_all(&mut d, &ok);
    assert_eq!((items.len(), err), (1, None));
    // One more byte is not.
    let mut big = b"SEND\n\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 94));
    big.push(0);
    let err = decode_err(&big, small_limits(), Version::V1_2);
    assert_eq!(err, StompError::FrameTooLarge { limit: 100 });
}

#[test]
fn oversize_content_length_fails_before_the_body_arrives() {
    let limits = Limits {
        max_header_bytes: 32,
        ..small_limits()
    };
    // 24 bytes of head + 76 body + NUL = 101.
    let mut d = Decoder::new(limits);
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:75\n\n"[..]);
    assert_eq!(d.decode(&mut buf), Ok(None), "exactly 100 bytes is allowed");
    let mut d = Decoder::new(limits);
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:76\n\n"[..]);
    assert_eq!(
        d.decode(&mut buf),
        Err(StompError::FrameTooLarge { limit: 100 })
    );
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:18446744073709551615\n\n"[..]);
    assert!(matches!(
        d.decode(&mut buf),
        Err(StompError::FrameTooLarge { .. })
    ));
}

#[test]
fn oversize_header_fails_before_its_line_ends() {
    let mut d = Decoder::new(small_limits());
    let mut buf = BytesMut::from(&b"SEND\nk:0123456789abcdef"[..]);
    assert_eq!(
        d.decode(&mut buf),
        Err(StompError::HeaderTooLarge { limit: 16 })
    );
    // Complete line at limit + 1 is rejected too; at the limit is accepted.
    let err = decode_err(
        b"SEND\nk:0123456789abcde\n\n\0",
        small_limits(),
        Version::V1_2,
    );
    assert_eq!(err, StompError::HeaderTooLarge { limit: 16 });
    let mut d = Decoder::new(small_limits());
    let (items, err) = decode_all(&mut d, b"SEND\nk:0123456789abcd\n\n\0");
    assert_eq!((items.len(), err), (1, None));
}

#[test]
fn too_many_headers() {
    let err = decode_err(
        b"SEND\na:1\nb:2\nc:3\nd:4\n\n\0",
        small_limits(),
        Version::V1_2,
    );
    assert_eq!(err, StompError::TooManyHeaders { limit: 3 });
    // Fails as soon as the extra header line is complete, before the frame is.
    let mut d = Decoder::new(small_limits());
    let mut buf = BytesMut::from(&b"SEND\na:1\nb:2\nc:3\nd:4\n"[..]);
    assert_eq!(
        d.decode(&mut buf),
        Err(StompError::TooManyHeaders { limit: 3 })
    );
}

#[test]
fn oversize_command_line() {
    let mut d = Decoder::new(small_limits());
    let mut buf = BytesMut::from(&b"SUBSCRIBEXXXXXXXX"[..]);
    assert_eq!(
        d.decode(&mut buf),
        Err(StompError::CommandTooLong { limit: 12 })
    );
}

#[test]
fn unbounded_header_block_is_cut_off_by_frame_limit() {
    // Many short header lines, each within limits, no blank line ever.
    let limits = Limits {
        max_headers: 10_000,
        ..small_limits()
    };
    let mut input = b"SEND\n".to_vec();
    for _ in 0..100 {
        input.extend_from_slice(b"a:1\n");
    }
    let err = decode_err(&input, limits, Version::V1_2);
    assert_eq!(err, StompError::FrameTooLarge { limit: 100 });
}

// ---- Property tests ---------------------------------------------------------------------

fn arb_text() -> impl Strategy<Value = String> {
    // Printable-ish text plus every byte that needs escaping (except NUL, which headers
    // cannot carry in any version).
    proptest::string::string_regex("[a-zA-Z0-9 :\\\\\n\r/é\u{1F600}-]{0,12}").expect("regex")
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let commands = prop_oneof![
        Just(Command::Send),
        Just(Command::Message),
        Just(Command::Subscribe),
        Just(Command::Ack),
        Just(Command::Error),
        Just(Command::Connect),
        Just(Command::Connected),
    ];
    (
        commands,
        proptest::collection::vec(("[a-z][a-z:-]{0,8}", arb_text()), 0..6),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(command, headers, body)| Frame {
            command,
            headers: headers
                .into_iter()
                .filter(|(n, _)| n != "content-length")
                .collect(),
            body: Bytes::from(body),
            without_content_length: false,
        })
}

/// What the decoder should give back for `frame` encoded in 1.2: the same frame plus the
/// content-length header the encoder adds.
fn expected_after_round_trip(frame: &Frame) -> Frame {
    let mut f = frame.clone();
    if !f.command.escapes_headers() {
        // Unescaped frames turn LF/CR (and ':' in names) into spaces.
        let clean = |s: &str, name: bool| -> String {
            s.chars()
                .map(|c| match c {
                    '\n' | '\r' => ' ',
                    ':' if name => ' ',
                    c => c,
                })
                .collect()
        };
        f.headers = f
            .headers
            .iter()
            .map(|(n, v)| (clean(n, true), clean(v, false)))
            .collect();
    }
    if f.command == Command::Message || !f.body.is_empty() {
        f.push_header("content-length", f.body.len().to_string());
    }
    f
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(0usize..512, 0..8),
        version in 0usize..3,
    ) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let mut d = Decoder::new(small_limits());
        d.set_version(Version::ALL[version]);
        let _ = decode_split(&mut d, &input, &cuts);
    }

    #[test]
    fn random_bytes_after_a_command_never_panic(
        input in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(b':'), Just(b'\\'), Just(0u8), any::<u8>()],
            0..256,
        ),
    ) {
        // Garbage that gets past the command line exercises header and body paths.
        let mut bytes = b"SEND\n".to_vec();
        bytes.extend_from_slice(&input);
        let _ = decode_all(&mut Decoder::new(small_limits()), &bytes);
        let _ = decode_all(&mut Decoder::default(), &bytes);
    }

    #[test]
    fn valid_frames_decode_identically_under_any_split(
        frames in proptest::collection::vec(arb_frame(), 1..4),
        cuts in proptest::collection::vec(0usize..2048, 0..12),
        heart_beats in 0usize..3,
    ) {
        let mut wire = BytesMut::new();
        let mut expected = Vec::new();
        for f in &frames {
            for _ in 0..heart_beats {
                encode_heartbeat(&mut wire);
                expected.push(DecodedItem::HeartBeat);
            }
            encode(f, Version::V1_2, &mut wire);
            expected.push(DecodedItem::Frame(expected_after_round_trip(f)));
        }
        let mut cuts = cuts;
        cuts.sort_unstable();
        let whole = decode_all(&mut { let mut d = Decoder::default(); d.set_version(Version::V1_2); d }, &wire);
        let split = decode_split(&mut { let mut d = Decoder::default(); d.set_version(Version::V1_2); d }, &wire, &cuts);
        prop_assert_eq!(&whole, &(expected, None));
        prop_assert_eq!(whole, split);
    }
}

#[test]
fn scan_cursor_remembers_progress_between_calls() {
    // A slow body must not be rescanned from its start on every read.
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&b"SEND\na:1\n\n"[..]);
    buf.extend_from_slice(&[b'x'; 1000]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    match &d.state {
        State::Body(body) => assert_eq!((body.body_start, body.scan), (10, 1010)),
        other => panic!("unexpected state {other:?}"),
    }
    // Same for a header line still arriving.
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&b"SEND\na:1\nlong:xxxxxxxx"[..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    match &d.state {
        State::Head(head) => {
            assert_eq!((head.line_start, head.scan, head.headers.len()), (9, 22, 1))
        }
        other => panic!("unexpected state {other:?}"),
    }
}
