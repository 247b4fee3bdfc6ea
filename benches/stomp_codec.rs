//! STOMP codec throughput: a 1 KiB SEND with 6 headers, decoded and encoded 1M times.
//!
//! `cargo bench --bench stomp_codec` (plain `main`, no harness; runs in a few seconds).
//! Decoding copies each 1000-frame batch into the read buffer first, as a socket read
//! would, so the numbers include that copy.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tandem::protocol::stomp::{encode, Command, DecodedItem, Decoder, Frame, Version};

const FRAMES_TOTAL: usize = 1_000_000;
const FRAMES_PER_BATCH: usize = 1_000;
const BODY_BYTES: usize = 1024;

fn send_frame() -> Frame {
    Frame::new(Command::Send)
        .with_header("destination", "/queue/orders.eu-west.priority")
        .with_header("content-type", "application/json")
        .with_header("persistent", "true")
        .with_header("priority", "4")
        .with_header("correlation-id", "3f2a9c1e-7b4d-4c1a-9e0f-5d6b7a8c9d0e")
        .with_header("receipt", "r-000123")
        .with_body(Bytes::from(vec![b'x'; BODY_BYTES]))
}

/// `FRAMES_PER_BATCH` frames back to back, with or without `content-length`.
fn batch(with_content_length: bool) -> Vec<u8> {
    let frame = send_frame();
    let mut one = BytesMut::new();
    encode(&frame, Version::V1_2, &mut one);
    let mut one = one.to_vec();
    if !with_content_length {
        let line = format!("content-length:{BODY_BYTES}\n");
        let at = one
            .windows(line.len())
            .position(|w| w == line.as_bytes())
            .expect("encoder wrote content-length");
        one.drain(at..at + line.len());
    }
    one.repeat(FRAMES_PER_BATCH)
}

fn bench_decode(with_content_length: bool) -> (Duration, usize) {
    let batch = batch(with_content_length);
    let mut decoder = Decoder::default();
    decoder.set_version(Version::V1_2);
    let start = Instant::now();
    let mut frames = 0;
    // One read buffer for the run, as a connection keeps: once the decoded frames are
    // dropped, `extend_from_slice` reclaims its space instead of allocating.
    let mut buf = BytesMut::with_capacity(batch.len());
    for _ in 0..FRAMES_TOTAL / FRAMES_PER_BATCH {
        buf.extend_from_slice(&batch);
        while let Some(item) = decoder.decode(&mut buf).expect("valid input") {
            if let DecodedItem::Frame(f) = item {
                black_box(&f);
                frames += 1;
            }
        }
        assert!(buf.is_empty());
    }
    assert_eq!(frames, FRAMES_TOTAL);
    (
        start.elapsed(),
        batch.len() * (FRAMES_TOTAL / FRAMES_PER_BATCH),
    )
}

fn bench_encode(version: Version) -> (Duration, usize) {
    let frame = send_frame();
    let mut out = BytesMut::with_capacity(2 * 1024 * 1024);
    let mut bytes = 0;
    let start = Instant::now();
    for _ in 0..FRAMES_TOTAL / FRAMES_PER_BATCH {
        out.clear();
        for _ in 0..FRAMES_PER_BATCH {
            encode(black_box(&frame), version, &mut out);
        }
        bytes += out.len();
        black_box(&out);
    }
    (start.elapsed(), bytes)
}

fn row(name: &str, (elapsed, bytes): (Duration, usize)) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{name:<32} {:>10} {:>8.3} {:>12.0} {:>10.1}",
        FRAMES_TOTAL,
        secs,
        FRAMES_TOTAL as f64 / secs,
        bytes as f64 / secs / 1e6,
    );
}

fn main() {
    println!(
        "{:<32} {:>10} {:>8} {:>12} {:>10}",
        "case (1 KiB SEND, 6 headers)", "frames", "secs", "frames/s", "MB/s"
    );
    // Warm-up: the first pass pays for page faults and allocator growth.
    black_box(bench_decode(true));
    row("decode, NUL-terminated", bench_decode(false));
    row("decode, content-length", bench_decode(true));
    row("encode 1.2", bench_encode(Version::V1_2));
    row("encode 1.0", bench_encode(Version::V1_0));
}
