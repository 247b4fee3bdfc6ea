//! OpenWire codec throughput (v12, loose encoding, no cache: what Tandem negotiates with
//! an ActiveMQ 5.x JMS client) for the commands that dominate traffic:
//!
//! * `Message`: a persistent 1 KiB ActiveMQTextMessage with 4 properties, as a JMS
//!   producer sends it (client -> broker, response required);
//! * `MessageDispatch`: the same message delivered to a consumer (broker -> client);
//! * `MessageAck`: a standard ack of one delivery (client -> broker);
//! * `Response`: the answer to a synchronous send (broker -> client).
//!
//! Decoding copies each batch of frames into the read buffer first, as a socket read
//! would, so the numbers include that copy; the decoded command is dropped at once (its
//! body and properties stay the zero-copy `Bytes` the decoder returns: properties are
//! not unmarshalled). Encoding appends a batch of frames to a reused output buffer.
//! Each case prints msgs/s, MB/s (frame bytes, size prefix included) and the median and
//! p99 over batches of the mean time per command.
//!
//! Run: `cargo bench --bench openwire_codec` (plain `main`, no harness; about 10 s).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use tandem::protocol::openwire::{
    AckType, Command, ConsumerId, Decoder, Destination, Encoder, Header, Message, MessageAck,
    MessageDispatch, MessageId, MessageKind, PrimitiveMap, PrimitiveValue, ProducerId, Response,
};

const BODY_CHARS: usize = 1024;
const PER_BATCH: usize = 1_000;
/// Batches run before measuring: page faults, allocator growth, branch predictors.
const WARMUP_BATCHES: usize = 20;
const CONNECTION: &str = "ID:bench-host-40915-1732612345678-1:1";

fn producer_id() -> ProducerId {
    ProducerId {
        connection_id: CONNECTION.into(),
        session_id: 1,
        value: 1,
    }
}

fn consumer_id() -> ConsumerId {
    ConsumerId {
        connection_id: "ID:bench-host-40915-1732612345678-3:1".into(),
        session_id: 1,
        value: 1,
    }
}

fn queue() -> Destination {
    Destination::queue("orders.eu-west.priority")
}

fn message_id(broker_sequence_id: i64) -> MessageId {
    MessageId {
        text_view: None,
        producer_id: Some(producer_id()),
        producer_sequence_id: 123_456,
        broker_sequence_id,
    }
}

/// What `session.createProducer(queue).send(textMessage)` puts on the wire.
fn text_message() -> Message {
    let mut m = Message {
        kind: MessageKind::Text,
        header: Header::new(4_321, true),
        producer_id: Some(producer_id()),
        destination: Some(queue()),
        message_id: Some(message_id(0)),
        correlation_id: Some("3f2a9c1e-7b4d-4c1a-9e0f-5d6b7a8c9d0e".into()),
        persistent: true,
        priority: 4,
        timestamp: 1_732_612_345_678,
        ..Message::default()
    };
    let text = "x".repeat(BODY_CHARS);
    m.set_text(Some(&text)).expect("text body");
    let mut props = PrimitiveMap::new();
    props.insert("region", PrimitiveValue::string("eu-west"));
    props.insert("orderId", PrimitiveValue::Long(9_876_543_210));
    props.insert("attempt", PrimitiveValue::Int(1));
    props.insert("express", PrimitiveValue::Boolean(true));
    m.set_properties(&props).expect("properties");
    m
}

fn send_command() -> Command {
    Command::Message(Box::new(text_message()))
}

/// The broker's delivery of the sent message: broker sequence id, arrival and broker
/// timestamps set, the producer's header zeroed.
fn dispatch_command() -> Command {
    let mut m = text_message();
    m.header = Header::default();
    m.message_id = Some(message_id(1_000_042));
    m.arrival = 1_732_612_345_679;
    m.broker_in_time = 1_732_612_345_679;
    m.broker_out_time = 1_732_612_345_680;
    Command::MessageDispatch(MessageDispatch {
        header: Header::default(),
        consumer_id: Some(consumer_id()),
        destination: Some(queue()),
        message: Some(Box::new(m)),
        redelivery_counter: 0,
    })
}

fn ack_command() -> Command {
    Command::MessageAck(MessageAck {
        header: Header::new(77, false),
        destination: Some(queue()),
        transaction_id: None,
        consumer_id: Some(consumer_id()),
        ack_type: AckType::Standard,
        first_message_id: Some(message_id(1_000_042)),
        last_message_id: Some(message_id(1_000_042)),
        message_count: 1,
        poison_cause: None,
    })
}

fn response_command() -> Command {
    Command::Response(Response::new(4_321))
}

struct Run {
    ops: usize,
    bytes: usize,
    elapsed: Duration,
    /// Mean ns per command of each batch.
    per_op_ns: Histogram<u64>,
}

impl Run {
    fn new() -> Run {
        Run {
            ops: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            per_op_ns: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram"),
        }
    }

    fn record(&mut self, elapsed: Duration, ops: usize, bytes: usize) {
        self.ops += ops;
        self.bytes += bytes;
        self.elapsed += elapsed;
        let ns = (elapsed.as_nanos() as u64 / ops as u64).max(1);
        self.per_op_ns.record(ns).expect("in range");
    }
}

fn bench_decode(command: &Command, batches: usize) -> Run {
    let mut one = BytesMut::new();
    Encoder::default()
        .encode(command, &mut one)
        .expect("encodes");
    let batch = one.to_vec().repeat(PER_BATCH);
    let mut decoder = Decoder::default();
    // One read buffer for the run, as a connection keeps: once the decoded commands are
    // dropped, `extend_from_slice` reclaims its space instead of allocating.
    let mut buf = BytesMut::with_capacity(batch.len());
    let mut run = Run::new();
    for i in 0..WARMUP_BATCHES + batches {
        let start = Instant::now();
        buf.extend_from_slice(&batch);
        let mut n = 0;
        while let Some(c) = decoder.decode(&mut buf).expect("valid input") {
            black_box(&c);
            n += 1;
        }
        let elapsed = start.elapsed();
        assert_eq!(n, PER_BATCH);
        assert!(buf.is_empty());
        if i >= WARMUP_BATCHES {
            run.record(elapsed, n, batch.len());
        }
    }
    run
}

fn bench_encode(command: &Command, batches: usize) -> Run {
    let encoder = Encoder::default();
    let mut out = BytesMut::with_capacity(2 * 1024 * 1024);
    let mut run = Run::new();
    for i in 0..WARMUP_BATCHES + batches {
        out.clear();
        let start = Instant::now();
        for _ in 0..PER_BATCH {
            encoder
                .encode(black_box(command), &mut out)
                .expect("encodes");
        }
        black_box(&out);
        let elapsed = start.elapsed();
        if i >= WARMUP_BATCHES {
            run.record(elapsed, PER_BATCH, out.len());
        }
    }
    run
}

fn row(name: &str, frame_bytes: usize, run: &Run) {
    let secs = run.elapsed.as_secs_f64();
    println!(
        "| {name} | {frame_bytes} | {} | {:.0} | {:.1} | {} | {} |",
        run.ops,
        run.ops as f64 / secs,
        run.bytes as f64 / secs / 1e6,
        run.per_op_ns.value_at_quantile(0.5),
        run.per_op_ns.value_at_quantile(0.99),
    );
}

fn main() {
    let cases: [(&str, Command, usize); 4] = [
        ("Message (1 KiB text, 4 props)", send_command(), 500),
        ("MessageDispatch (same message)", dispatch_command(), 500),
        ("MessageAck (standard)", ack_command(), 1_000),
        ("Response", response_command(), 2_000),
    ];
    println!(
        "\nopenwire_codec: v12 loose, {PER_BATCH} commands per batch; \
         ns/msg = mean of a batch, p50/p99 over batches\n"
    );
    println!("| case | frame bytes | msgs | msgs/s | MB/s | ns/msg p50 | ns/msg p99 |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, command, batches) in &cases {
        let mut one = BytesMut::new();
        Encoder::default()
            .encode(command, &mut one)
            .expect("encodes");
        let frame_bytes = one.len();
        // The frame must survive a round trip, or the numbers measure something else.
        let back = Decoder::default()
            .decode(&mut one)
            .expect("decodes")
            .expect("whole frame");
        assert_eq!(&back, command, "{name}: round trip");
        row(
            &format!("decode {name}"),
            frame_bytes,
            &bench_decode(command, *batches),
        );
        row(
            &format!("encode {name}"),
            frame_bytes,
            &bench_encode(command, *batches),
        );
    }
}
