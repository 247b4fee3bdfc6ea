//! Tests of the replication frame codec: round trips, exact bytes, splits, bad input.
use super::*;
use proptest::prelude::*;

fn hello() -> Frame {
    Frame {
        epoch: 3,
        body: Body::Hello {
            version: VERSION,
            user: "ädmin".into(),
            nonce: [7; NONCE_BYTES],
        },
    }
}

fn every_kind() -> Vec<Frame> {
    let f = |epoch, body| Frame { epoch, body };
    vec![
        hello(),
        f(
            4,
            Body::Welcome {
                proof: [1; PROOF_BYTES],
                master_node_id: "node-a".into(),
                oldest: vec![7, 8],
                history: vec![(0x1_0007, vec![4096, 4096]), (0x2_0009, vec![8192, 12288])],
            },
        ),
        f(
            4,
            Body::Refuse {
                proof: [2; PROOF_BYTES],
                code: RefuseCode::SecondSlave,
                reason: "already attached".into(),
            },
        ),
        f(
            4,
            Body::Refuse {
                proof: [0; PROOF_BYTES],
                code: RefuseCode::Other(200),
                reason: String::new(),
            },
        ),
        f(
            0,
            Body::Challenge {
                nonce: [9; NONCE_BYTES],
            },
        ),
        f(
            3,
            Body::Proof {
                proof: [3; PROOF_BYTES],
                node_id: "node-b".into(),
                client_addrs: vec!["tcp://10.0.0.2:61616".into(), "".into()],
                positions: vec![0, 1 << 40, u64::MAX],
            },
        ),
        f(
            3,
            Body::Proof {
                proof: [0; PROOF_BYTES],
                node_id: String::new(),
                client_addrs: vec![],
                positions: vec![],
            },
        ),
        f(
            5,
            Body::Batch {
                shard: 2,
                start: 4096,
                bytes: Bytes::from_static(b"\x00journal\xffbytes"),
            },
        ),
        f(
            5,
            Body::Batch {
                shard: 0,
                start: 0,
                bytes: Bytes::new(),
            },
        ),
        f(
            5,
            Body::Volatile {
                shard: 1,
                seq: 99,
                record: Bytes::from_static(b"rec"),
            },
        ),
        f(
            u64::MAX,
            Body::Ack {
                shard: ShardId::from(u16::MAX),
                received: 10,
                durable: 9,
            },
        ),
        f(0, Body::Heartbeat),
        f(0, Body::InSync),
        f(
            1,
            Body::Goodbye {
                reason: "shutdown".into(),
            },
        ),
    ]
}

fn encoded(frame: &Frame) -> BytesMut {
    let mut b = BytesMut::new();
    encode(frame, &mut b);
    b
}

/// Decodes everything in `buf`; panics on an error or a leftover partial frame.
fn decode_all(buf: &mut BytesMut) -> Vec<Frame> {
    let mut d = Decoder::default();
    let mut out = Vec::new();
    while let Some(f) = d.decode(buf).expect("valid frames") {
        out.push(f);
    }
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    out
}

#[test]
fn every_kind_round_trips() {
    for f in every_kind() {
        let mut b = encoded(&f);
        assert_eq!(decode_all(&mut b), vec![f]);
    }
}

#[test]
fn heartbeat_bytes_are_exact() {
    let b = encoded(&Frame {
        epoch: 0x0102_0304_0506_0708,
        body: Body::Heartbeat,
    });
    assert_eq!(&b[..], &[9, 0, 0, 0, 7, 8, 7, 6, 5, 4, 3, 2, 1]);
}

#[test]
fn ack_bytes_are_exact() {
    let b = encoded(&Frame {
        epoch: 2,
        body: Body::Ack {
            shard: 0x0103,
            received: 0x10,
            durable: 0x0f,
        },
    });
    #[rustfmt::skip]
    let want: &[u8] = &[
        27, 0, 0, 0,             // len: 1 + 8 + 2 + 8 + 8
        6,                       // kind
        2, 0, 0, 0, 0, 0, 0, 0,  // epoch
        3, 1,                    // shard
        0x10, 0, 0, 0, 0, 0, 0, 0, // received
        0x0f, 0, 0, 0, 0, 0, 0, 0, // durable
    ];
    assert_eq!(&b[..], want);
}

#[test]
fn hello_magic_sits_where_sniffing_looks() {
    let b = encoded(&hello());
    assert_eq!(b[4], 1);
    assert_eq!(&b[13..21], MAGIC);
    for n in 0..21 {
        assert_eq!(looks_like_replication(&b[..n]), None, "{n} bytes");
    }
    assert_eq!(looks_like_replication(&b[..21]), Some(true));
    assert_eq!(looks_like_replication(&b), Some(true));
}

#[test]
fn sniffing_rules_out_other_protocols_early() {
    assert_eq!(looks_like_replication(b"CONNECT\n"), Some(false));
    assert_eq!(looks_like_replication(b"STOMP\n"), Some(false));
    // OpenWire WireFormatInfo: size (BE), type 1, "ActiveMQ", version...
    let mut ow = vec![0, 0, 1, 0, 1];
    ow.extend_from_slice(b"ActiveMQ");
    assert_eq!(looks_like_replication(&ow), None);
    ow.extend_from_slice(&[0, 0, 0, 12]);
    assert_eq!(looks_like_replication(&ow), Some(false));
    assert_eq!(
        looks_like_replication(&encoded(&every_kind()[2])),
        Some(false)
    );
}

#[test]
fn one_byte_at_a_time() {
    let frames = every_kind();
    let mut all = BytesMut::new();
    for f in &frames {
        encode(f, &mut all);
    }
    let mut d = Decoder::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &byte in all.iter() {
        buf.put_u8(byte);
        if let Some(f) = d.decode(&mut buf).expect("valid") {
            got.push(f);
        }
        assert_eq!(d.decode(&mut buf), Ok(None));
    }
    assert_eq!(got, frames);
    assert!(buf.is_empty());
}

#[test]
fn batch_bytes_are_not_copied() {
    let mut buf = encoded(&every_kind()[7]);
    let base = buf.as_ptr() as usize;
    let Some(Frame {
        body: Body::Batch { bytes, .. },
        ..
    }) = Decoder::default().decode(&mut buf).expect("valid")
    else {
        panic!("not a batch");
    };
    assert_eq!(bytes.as_ptr() as usize, base + HEADER_BYTES + 10);
}

#[test]
fn truncated_frame_waits_and_consumes_nothing() {
    for f in every_kind() {
        let b = encoded(&f);
        for cut in 0..b.len() {
            let mut part = BytesMut::from(&b[..cut]);
            assert_eq!(Decoder::default().decode(&mut part), Ok(None));
            assert_eq!(part.len(), cut);
        }
    }
}

/// A frame whose `len` ends it inside a field.
#[test]
fn len_cutting_a_field_is_an_error() {
    for f in every_kind() {
        let full = encoded(&f);
        for body_len in 0..full.len() - HEADER_BYTES {
            let mut b = BytesMut::from(&full[..HEADER_BYTES + body_len]);
            let len = (b.len() - 4) as u32;
            b[..4].copy_from_slice(&len.to_le_bytes());
            match Decoder::default().decode(&mut b) {
                Err(_) => {}
                // Batch and Volatile payloads may legitimately be shorter.
                Ok(Some(Frame {
                    body: Body::Batch { .. } | Body::Volatile { .. },
                    ..
                })) if body_len >= 10 => {}
                // Lists carry no count, so a prefix can be another valid frame
                // (address bytes read as positions): only `len` delimits them.
                Ok(Some(Frame {
                    body: Body::Welcome { .. } | Body::Proof { .. },
                    ..
                })) => {}
                other => panic!("{f:?} cut to {body_len}: {other:?}"),
            }
        }
    }
    let mut b = BytesMut::from(&[20u8, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0][..]);
    b.extend_from_slice(&[0; 11]);
    assert_eq!(
        Decoder::default().decode(&mut b),
        Err(FrameError::Truncated { kind: 6 })
    );
}

#[test]
fn oversized_len_is_refused_from_four_bytes() {
    let mut d = Decoder::new(1024);
    let mut b = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
    let err = FrameError::TooLarge {
        bytes: 4 + u64::from(u32::MAX),
        max_frame_bytes: 1024,
    };
    assert_eq!(d.decode(&mut b), Err(err.clone()));
    // The stream is lost: the decoder stays failed, whatever follows.
    let mut ok = encoded(&Frame {
        epoch: 0,
        body: Body::Heartbeat,
    });
    assert_eq!(d.decode(&mut ok), Err(err));

    // Exactly at the limit is fine; one byte over is not.
    let batch = |n: usize| Frame {
        epoch: 0,
        body: Body::Batch {
            shard: 0,
            start: 0,
            bytes: Bytes::from(vec![7; n]),
        },
    };
    let at_limit = 1024 - HEADER_BYTES - 10;
    let mut b = encoded(&batch(at_limit));
    assert_eq!(b.len(), 1024);
    assert_eq!(Decoder::new(1024).decode(&mut b), Ok(Some(batch(at_limit))));
    let b = encoded(&batch(at_limit + 1));
    assert!(matches!(
        Decoder::new(1024).decode(&mut b[..4].into()),
        Err(FrameError::TooLarge { bytes: 1025, .. })
    ));
}

#[test]
fn malformed_headers_and_bodies_are_errors() {
    let dec = |bytes: &[u8]| Decoder::default().decode(&mut BytesMut::from(bytes));
    assert_eq!(dec(&[8, 0, 0, 0]), Err(FrameError::TooShort { len: 8 }));
    assert_eq!(dec(&[9, 0, 0, 0, 0]), Err(FrameError::UnknownKind(0)));
    assert_eq!(dec(&[9, 0, 0, 0, 12]), Err(FrameError::UnknownKind(12)));
    assert_eq!(
        dec(&[10, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(FrameError::TrailingBytes { kind: 7, extra: 1 })
    );
    // Goodbye whose string is not UTF-8.
    assert_eq!(
        dec(&[14, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0xff]),
        Err(FrameError::Utf8)
    );
    // Welcome with a stray byte after its counted positions.
    let mut w = encoded(&every_kind()[1]);
    w.put_u8(0);
    let len = (w.len() - 4) as u32;
    w[..4].copy_from_slice(&len.to_le_bytes());
    assert_eq!(
        dec(&w),
        Err(FrameError::TrailingBytes { kind: 2, extra: 1 })
    );
}

#[test]
fn hello_without_magic_is_refused() {
    let mut b = encoded(&hello());
    b[13] = b'X';
    // Refused as soon as the magic is in, before the rest of the frame.
    assert_eq!(
        Decoder::default().decode(&mut BytesMut::from(&b[..21])),
        Err(FrameError::BadMagic)
    );
    assert_eq!(Decoder::default().decode(&mut b), Err(FrameError::BadMagic));
}

#[test]
fn refuse_codes_map_both_ways() {
    for c in 0..=u8::MAX {
        assert_eq!(RefuseCode::from_u8(c).to_u8(), c);
    }
    assert_eq!(RefuseCode::from_u8(3), RefuseCode::StaleEpoch);
    assert_eq!(RefuseCode::from_u8(0), RefuseCode::Other(0));
}

pub(crate) fn arb_str() -> impl Strategy<Value = String> {
    proptest::string::string_regex("\\PC{0,8}").expect("regex")
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

pub(crate) fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (any::<u16>(), arb_str(), any::<[u8; NONCE_BYTES]>()).prop_map(|(version, user, nonce)| {
            Body::Hello {
                version,
                user,
                nonce,
            }
        }),
        any::<[u8; NONCE_BYTES]>().prop_map(|nonce| Body::Challenge { nonce }),
        (
            any::<[u8; PROOF_BYTES]>(),
            arb_str(),
            proptest::collection::vec(arb_str(), 0..4),
            proptest::collection::vec(any::<u64>(), 0..5),
        )
            .prop_map(|(proof, node_id, client_addrs, positions)| Body::Proof {
                proof,
                node_id,
                client_addrs,
                positions,
            }),
        (
            any::<[u8; PROOF_BYTES]>(),
            arb_str(),
            proptest::collection::vec(any::<u64>(), 0..5),
            proptest::collection::vec(any::<u64>(), 0..4),
        )
            .prop_map(|(proof, master_node_id, oldest, epochs)| {
                let history = epochs
                    .iter()
                    .map(|&e| (e, oldest.iter().map(|p| p ^ e).collect()))
                    .collect();
                Body::Welcome {
                    proof,
                    master_node_id,
                    oldest,
                    history,
                }
            }),
        (any::<[u8; PROOF_BYTES]>(), any::<u8>(), arb_str()).prop_map(|(proof, c, reason)| {
            Body::Refuse {
                proof,
                code: RefuseCode::from_u8(c),
                reason,
            }
        }),
        (any::<u16>(), any::<u64>(), arb_bytes()).prop_map(|(shard, start, bytes)| {
            Body::Batch {
                shard: shard.into(),
                start,
                bytes,
            }
        }),
        (any::<u16>(), any::<u64>(), arb_bytes()).prop_map(|(shard, seq, record)| {
            Body::Volatile {
                shard: shard.into(),
                seq,
                record,
            }
        }),
        (any::<u16>(), any::<u64>(), any::<u64>()).prop_map(|(shard, a, b)| Body::Ack {
            shard: shard.into(),
            received: a.max(b),
            durable: a.min(b),
        }),
        Just(Body::Heartbeat),
        Just(Body::InSync),
        arb_str().prop_map(|reason| Body::Goodbye { reason }),
    ]
}

pub(crate) fn arb_frame() -> impl Strategy<Value = Frame> {
    (any::<u64>(), arb_body()).prop_map(|(epoch, body)| Frame { epoch, body })
}

/// Feeds `input` in pieces cut at `cuts`; returns the frames, or the first error.
fn feed(
    d: &mut Decoder,
    input: &[u8],
    cuts: &[usize],
) -> (Vec<Frame>, Option<FrameError>, BytesMut) {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let (mut buf, mut frames, mut from) = (BytesMut::new(), Vec::new(), 0);
    for cut in cuts {
        buf.extend_from_slice(&input[from..cut]);
        from = cut;
        loop {
            match d.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e), buf),
            }
        }
    }
    (frames, None, buf)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(0usize..512, 0..8),
        max in 0usize..600,
    ) {
        let _ = feed(&mut Decoder::new(max), &input, &cuts);
        let _ = looks_like_replication(&input);
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(
        kind in 1u8..=8,
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut input = ((body.len() + 9) as u32).to_le_bytes().to_vec();
        input.push(kind);
        input.extend_from_slice(&[0; 8]);
        if kind == 1 {
            input.extend_from_slice(MAGIC);
        }
        input.extend_from_slice(&body);
        let _ = feed(&mut Decoder::default(), &input, &[]);
    }

    #[test]
    fn valid_frames_round_trip_whatever_the_split(
        frames in proptest::collection::vec(arb_frame(), 1..5),
        cuts in proptest::collection::vec(0usize..2048, 0..10),
    ) {
        let mut input = BytesMut::new();
        for f in &frames {
            encode(f, &mut input);
        }
        let (got, err, rest) = feed(&mut Decoder::default(), &input, &cuts);
        prop_assert_eq!(err, None);
        prop_assert!(rest.is_empty());
        prop_assert_eq!(got, frames);
    }
}
