//! STOMP bytes <-> frames.
//!
//! # Wire format (STOMP 1.0 / 1.1 / 1.2)
//!
//! ```text
//! stream   = *( heart-beat / frame *EOL )
//! frame    = command EOL *( header EOL ) EOL body NUL
//! command  = "CONNECT" / "STOMP" / "SEND" / "SUBSCRIBE" / "UNSUBSCRIBE" / "ACK" / "NACK"
//!          / "BEGIN" / "COMMIT" / "ABORT" / "DISCONNECT"                       ; client
//!          / "CONNECTED" / "MESSAGE" / "RECEIPT" / "ERROR"                     ; server
//! header   = name ":" value          ; split at the FIRST ':'; UTF-8; name non-empty
//! EOL      = [CR] LF                 ; CR LF is 1.2, but read leniently in every version
//! body     = content-length octets   ; if a `content-length` header is present (NUL allowed)
//!          / *<any octet but NUL>    ; otherwise up to the first NUL
//! heart-beat = EOL                   ; a bare EOL between frames
//! ```
//!
//! Header escaping (names and values; never in CONNECT, STOMP or CONNECTED, which are
//! exchanged before the version is known):
//!
//! | octet | 1.0 | 1.1   | 1.2   |
//! |-------|-----|-------|-------|
//! | CR    | raw | raw   | `\r`  |
//! | LF    | -   | `\n`  | `\n`  |
//! | `:`   | raw | `\c`  | `\c`  |
//! | `\`   | raw | `\\`  | `\\`  |
//!
//! Decoding 1.1/1.2, any other `\x` (or a trailing `\`) is a fatal error, as the spec
//! demands. Raw `:` in a value is accepted (clients send `destination:queue://a`).
//! Encoding, a byte the version cannot express (LF/CR in 1.0 or unescaped frames, `:` in
//! an unescaped name, NUL anywhere in a header) is written as a space: letting it through
//! would let, say, a 1.1 publisher's `\n` inject headers into a 1.0 subscriber's frame.
//!
//! # Bounds
//!
//! The decoder never buffers more than [`Limits`] allows: a header line, the header count
//! and the frame size are checked while the header block is still arriving, and a
//! `content-length` above the frame limit is refused before its body is read. Framing
//! errors are fatal: the stream cannot be resynchronised, so the decoder stays failed and
//! the session answers with an ERROR frame and closes.
//!
//! # Content-length on encode
//!
//! The encoder owns `content-length`: any such header in the frame is dropped and the
//! true length is written for every MESSAGE (a body may hold NUL; ActiveMQ does the same
//! for bytes messages) except a text message without NUL, which ActiveMQ sends without
//! it (`Frame::without_content_length`), and for any other frame with a non-empty body.

use std::mem;

use bytes::{Buf, BufMut, BytesMut};
use memchr::{memchr, memchr2};

use super::error::{excerpt, StompError};
use super::frame::{Command, Frame};
use super::version::Version;

/// Bounds on what one peer can make us buffer or allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole frame, command line to NUL inclusive. ActiveMQ's `maxFrameSize` defaults to
    /// ~100 MiB; 64 MiB is ample for messages and halves the worst case per connection.
    pub max_frame_bytes: usize,
    /// One header line, EOL excluded (ActiveMQ: `MAX_HEADER_LENGTH` = 10 KiB).
    pub max_header_bytes: usize,
    /// Header lines per frame (ActiveMQ: `MAX_HEADERS` = 1000).
    pub max_headers: usize,
    /// The command line, EOL excluded (ActiveMQ: `MAX_COMMAND_LENGTH` = 1024).
    pub max_command_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_bytes: 64 * 1024 * 1024,
            max_header_bytes: 10 * 1024,
            max_headers: 1000,
            max_command_bytes: 1024,
        }
    }
}

/// What one [`Decoder::decode`] call yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodedItem {
    Frame(Frame),
    /// A bare EOL between frames. The EOLs a peer may append after a frame's NUL arrive
    /// as heart-beats too: both just prove the peer is alive.
    HeartBeat,
}

/// Incremental, bounded STOMP decoder for one connection.
///
/// Feed it the connection's read buffer after every read; each call consumes at most one
/// item from the front. Bytes already scanned are never scanned again: the position of
/// the scan and the headers parsed so far survive between calls.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// Decides header escaping; set once the session has negotiated it.
    version: Version,
    state: State,
    /// Set by the first error; every later call repeats it, since the stream is lost.
    failed: Option<StompError>,
}

#[derive(Debug)]
enum State {
    /// At a frame boundary: the buffer starts with a heart-beat EOL or a command.
    Idle,
    /// Inside the command line or headers; the frame starts at buffer offset 0.
    Head(Head),
    /// Header block parsed; waiting for the body and its NUL.
    Body(Body),
}

#[derive(Debug, Default)]
struct Head {
    /// Offset of the first unscanned byte. Invariant: `line_start <= scan <= buf.len()`.
    scan: usize,
    /// Offset where the line being scanned starts.
    line_start: usize,
    /// `None` until the command line is complete.
    command: Option<Command>,
    headers: Vec<(String, String)>,
}

#[derive(Debug)]
struct Body {
    command: Command,
    headers: Vec<(String, String)>,
    /// Offset of the first body byte (just past the blank line).
    body_start: usize,
    /// From the `content-length` header; `None` means "up to the first NUL".
    content_length: Option<usize>,
    /// Without content-length: offset up to which no NUL was found.
    scan: usize,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new(Limits::default())
    }
}

impl Decoder {
    /// A decoder for a fresh connection: STOMP 1.0 rules until [`Decoder::set_version`].
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            version: Version::V1_0,
            state: State::Idle,
            failed: None,
        }
    }

    /// Switches header escaping to the negotiated version. Call it after `decode` returned
    /// the CONNECT frame and before the next `decode`, so no frame is decoded half in one
    /// version and half in another.
    pub fn set_version(&mut self, version: Version) {
        debug_assert!(
            matches!(self.state, State::Idle),
            "set_version in the middle of a frame"
        );
        self.version = version;
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Changes the largest frame accepted from the next frame on (the connection loop
    /// raises it from the small pre-login bound once the client has logged in). Call it
    /// between frames, like [`Decoder::set_version`].
    pub fn set_max_frame_bytes(&mut self, max_frame_bytes: usize) {
        debug_assert!(
            matches!(self.state, State::Idle),
            "set_max_frame_bytes in the middle of a frame"
        );
        self.limits.max_frame_bytes = max_frame_bytes;
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes the next heart-beat or frame off the front of `buf`. `Ok(None)`: need more
    /// bytes (nothing consumed, progress remembered). `Err`: the connection must close.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<DecodedItem>, StompError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.step(buf);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.state = State::Idle;
        }
        result
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<DecodedItem>, StompError> {
        // Each pass moves Idle -> Head -> Body -> Idle at most once, so this ends.
        loop {
            match mem::replace(&mut self.state, State::Idle) {
                State::Idle => match buf.first() {
                    None => return Ok(None),
                    Some(b'\n') => {
                        buf.advance(1);
                        return Ok(Some(DecodedItem::HeartBeat));
                    }
                    Some(b'\r') => match buf.get(1) {
                        None => return Ok(None),
                        Some(b'\n') => {
                            buf.advance(2);
                            return Ok(Some(DecodedItem::HeartBeat));
                        }
                        Some(_) => return Err(StompError::MalformedFrame("CR not followed by LF")),
                    },
                    Some(_) => {
                        self.state = State::Head(Head {
                            // Typical client frames carry under 8 headers: one allocation.
                            headers: Vec::with_capacity(8),
                            ..Head::default()
                        })
                    }
                },
                State::Head(mut head) => {
                    match scan_head(&self.limits, self.version, &mut head, buf)? {
                        Some(body) => self.state = State::Body(body),
                        None => {
                            self.state = State::Head(head);
                            return Ok(None);
                        }
                    }
                }
                State::Body(mut body) => match find_nul(&self.limits, &mut body, buf)? {
                    Some(nul) => {
                        debug_assert!(body.body_start <= nul && buf[nul] == 0);
                        let frame_bytes = buf.split_to(nul + 1).freeze();
                        return Ok(Some(DecodedItem::Frame(Frame {
                            command: body.command,
                            headers: body.headers,
                            body: frame_bytes.slice(body.body_start..nul),
                            without_content_length: false,
                        })));
                    }
                    None => {
                        self.state = State::Body(body);
                        return Ok(None);
                    }
                },
            }
        }
    }
}

/// Parses complete lines of the header block as they arrive. Returns the body state once
/// the blank line is seen, `None` if more bytes are needed.
fn scan_head(
    limits: &Limits,
    version: Version,
    head: &mut Head,
    buf: &[u8],
) -> Result<Option<Body>, StompError> {
    loop {
        debug_assert!(head.line_start <= head.scan && head.scan <= buf.len());
        // NUL is searched for too: inside the header block it can only mean a truncated
        // or garbage frame, and stopping there keeps us from buffering past it.
        let Some(offset) = memchr2(b'\n', 0, &buf[head.scan..]) else {
            head.scan = buf.len();
            // The line is incomplete; refuse now if it is already too long. One byte of
            // slack for a CR whose LF has not arrived yet.
            let partial = buf.len() - head.line_start;
            match head.command {
                None if partial > limits.max_command_bytes + 1 => {
                    return Err(StompError::CommandTooLong {
                        limit: limits.max_command_bytes,
                    })
                }
                Some(_) if partial > limits.max_header_bytes + 1 => {
                    return Err(StompError::HeaderTooLarge {
                        limit: limits.max_header_bytes,
                    })
                }
                _ => {}
            }
            // The frame still needs at least its NUL.
            if buf.len() >= limits.max_frame_bytes {
                return Err(StompError::FrameTooLarge {
                    limit: limits.max_frame_bytes,
                });
            }
            return Ok(None);
        };
        let eol = head.scan + offset;
        if buf[eol] == 0 {
            return Err(StompError::MalformedFrame(
                "NUL before the end of the headers",
            ));
        }
        // A frame needs at least one more byte (its NUL) after this line.
        if eol + 2 > limits.max_frame_bytes {
            return Err(StompError::FrameTooLarge {
                limit: limits.max_frame_bytes,
            });
        }
        let raw = &buf[head.line_start..eol];
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        head.scan = eol + 1;
        head.line_start = eol + 1;

        let Some(command) = head.command else {
            if line.len() > limits.max_command_bytes {
                return Err(StompError::CommandTooLong {
                    limit: limits.max_command_bytes,
                });
            }
            let command = Command::from_bytes(line)
                .ok_or_else(|| StompError::UnknownCommand(excerpt(line)))?;
            head.command = Some(command);
            continue;
        };
        if line.is_empty() {
            return start_body(limits, command, mem::take(&mut head.headers), eol + 1).map(Some);
        }
        if line.len() > limits.max_header_bytes {
            return Err(StompError::HeaderTooLarge {
                limit: limits.max_header_bytes,
            });
        }
        if head.headers.len() >= limits.max_headers {
            return Err(StompError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        let escape = if command.escapes_headers() {
            version
        } else {
            Version::V1_0
        };
        head.headers.push(parse_header(line, escape)?);
    }
}

/// Reads `content-length` (first occurrence) and refuses oversize bodies before reading them.
fn start_body(
    limits: &Limits,
    command: Command,
    headers: Vec<(String, String)>,
    body_start: usize,
) -> Result<Body, StompError> {
    let content_length = match headers.iter().find(|(n, _)| n == "content-length") {
        None => None,
        Some((_, v)) => {
            let n = parse_content_length(v)?;
            // Frame = head + body + NUL; checked arithmetic since `n` is the peer's number.
            let frame_bytes = body_start.checked_add(n).and_then(|x| x.checked_add(1));
            if frame_bytes.is_none_or(|len| len > limits.max_frame_bytes) {
                return Err(StompError::FrameTooLarge {
                    limit: limits.max_frame_bytes,
                });
            }
            Some(n)
        }
    };
    Ok(Body {
        command,
        headers,
        body_start,
        content_length,
        scan: body_start,
    })
}

/// Offset of the NUL that ends the frame, or `None` if it has not arrived.
fn find_nul(limits: &Limits, body: &mut Body, buf: &[u8]) -> Result<Option<usize>, StompError> {
    if let Some(n) = body.content_length {
        let nul = body.body_start + n;
        return match buf.get(nul) {
            None => Ok(None),
            Some(0) => Ok(Some(nul)),
            Some(_) => Err(StompError::MissingNul),
        };
    }
    debug_assert!(body.scan <= buf.len());
    match memchr(0, &buf[body.scan..]) {
        Some(offset) => {
            let nul = body.scan + offset;
            if nul + 1 > limits.max_frame_bytes {
                return Err(StompError::FrameTooLarge {
                    limit: limits.max_frame_bytes,
                });
            }
            Ok(Some(nul))
        }
        None => {
            body.scan = buf.len();
            if buf.len() >= limits.max_frame_bytes {
                return Err(StompError::FrameTooLarge {
                    limit: limits.max_frame_bytes,
                });
            }
            Ok(None)
        }
    }
}

/// ActiveMQ trims the value before `parseInt`; we do too, but accept digits only.
fn parse_content_length(value: &str) -> Result<usize, StompError> {
    let digits = value.trim_matches(|c: char| c.is_ascii_whitespace());
    let bad = || StompError::BadContentLength(excerpt(value.as_bytes()));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}

/// Splits `name:value` at the first colon and unescapes both per `version`
/// (`V1_0` = no escaping, used for CONNECT/STOMP/CONNECTED in every version).
fn parse_header(line: &[u8], version: Version) -> Result<(String, String), StompError> {
    let colon = memchr(b':', line).ok_or_else(|| StompError::MalformedHeader(excerpt(line)))?;
    if colon == 0 {
        return Err(StompError::MalformedHeader(excerpt(line)));
    }
    // Fast path for the common line with nothing to unescape: one UTF-8 validation and
    // one search per line instead of one each per name and value.
    if version == Version::V1_0 || memchr(b'\\', line).is_none() {
        let text = std::str::from_utf8(line).map_err(|_| StompError::InvalidUtf8)?;
        // `colon` indexes an ASCII byte, so it is a char boundary.
        let (name, value) = text.split_at(colon);
        return Ok((name.to_owned(), value[1..].to_owned()));
    }
    Ok((
        unescape(&line[..colon], version)?,
        unescape(&line[colon + 1..], version)?,
    ))
}

fn unescape(raw: &[u8], version: Version) -> Result<String, StompError> {
    let first_backslash = match version {
        Version::V1_0 => None,
        Version::V1_1 | Version::V1_2 => memchr(b'\\', raw),
    };
    let Some(first) = first_backslash else {
        // Fast path: one validation, one allocation.
        return std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| StompError::InvalidUtf8);
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let decoded = match raw.get(i + 1) {
            Some(b'n') => b'\n',
            Some(b'c') => b':',
            Some(b'\\') => b'\\',
            Some(b'r') if version == Version::V1_2 => b'\r',
            Some(&other) => {
                return Err(StompError::InvalidEscape(excerpt(&[b'\\', other])));
            }
            None => return Err(StompError::InvalidEscape("\\".to_owned())),
        };
        out.push(decoded);
        i += 2;
    }
    // Escapes are ASCII, so validating after unescaping is equivalent to before.
    String::from_utf8(out).map_err(|_| StompError::InvalidUtf8)
}

// ---------------------------------------------------------------------------------------
// Encoding.

/// Byte-class table entry: copy the byte as is.
const PASS: u8 = 0;
/// Byte-class table entry: the version cannot express this byte here; write a space.
const REPLACE: u8 = 1;
// Any other entry `x` means: write `\x`.

/// One lookup per byte decides pass / escape / replace, so encoding headers is a single
/// pass with bulk copies between special bytes and no allocation.
const fn escape_table(escape_cr: bool, escape: bool, colon_unsafe: bool) -> [u8; 256] {
    let mut t = [PASS; 256];
    t[0] = REPLACE;
    if escape {
        t[b'\n' as usize] = b'n';
        t[b':' as usize] = b'c';
        t[b'\\' as usize] = b'\\';
        if escape_cr {
            t[b'\r' as usize] = b'r';
        }
    } else {
        t[b'\n' as usize] = REPLACE;
        t[b'\r' as usize] = REPLACE;
        if colon_unsafe {
            t[b':' as usize] = REPLACE;
        }
    }
    t
}

static ESCAPE_1_2: [u8; 256] = escape_table(true, true, false);
static ESCAPE_1_1: [u8; 256] = escape_table(false, true, false);
static RAW_VALUE: [u8; 256] = escape_table(false, false, false);
/// In an unescaped name a ':' would move the name/value split.
static RAW_NAME: [u8; 256] = escape_table(false, false, true);

const CONTENT_LENGTH: &str = "content-length";
/// `content-length:` + up to 20 digits + LF.
const CONTENT_LENGTH_LINE_MAX: usize = CONTENT_LENGTH.len() + 1 + 20 + 1;

/// Encoder for one connection: [`encode`] with the session's negotiated version.
#[derive(Debug, Clone, Copy)]
pub struct Encoder {
    pub version: Version,
}

impl Encoder {
    pub fn new(version: Version) -> Encoder {
        Encoder { version }
    }

    pub fn encode(&self, frame: &Frame, out: &mut BytesMut) {
        encode(frame, self.version, out);
    }

    pub fn encode_heartbeat(&self, out: &mut BytesMut) {
        encode_heartbeat(out);
    }
}

/// Appends one heart-beat (a bare LF) to `out`.
pub fn encode_heartbeat(out: &mut BytesMut) {
    out.put_u8(b'\n');
}

/// Appends `frame` to `out`, escaped for `version`, `content-length` computed, NUL ended.
pub fn encode(frame: &Frame, version: Version, out: &mut BytesMut) {
    let (name_table, value_table) = if !frame.command.escapes_headers() {
        (&RAW_NAME, &RAW_VALUE)
    } else {
        match version {
            Version::V1_0 => (&RAW_NAME, &RAW_VALUE),
            Version::V1_1 => (&ESCAPE_1_1, &ESCAPE_1_1),
            Version::V1_2 => (&ESCAPE_1_2, &ESCAPE_1_2),
        }
    };
    let command = frame.command.as_str();
    // One reservation for the common case of nothing to escape; escapes grow it as needed.
    let headers_len: usize = frame
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum();
    out.reserve(
        command.len() + 1 + headers_len + CONTENT_LENGTH_LINE_MAX + 1 + frame.body.len() + 1,
    );

    out.put_slice(command.as_bytes());
    out.put_u8(b'\n');
    for (name, value) in &frame.headers {
        if name == CONTENT_LENGTH {
            continue;
        }
        write_escaped(out, name.as_bytes(), name_table);
        out.put_u8(b':');
        write_escaped(out, value.as_bytes(), value_table);
        out.put_u8(b'\n');
    }
    let with_length = if frame.command == Command::Message {
        // A NUL in the body would end it early without the length.
        !frame.without_content_length || frame.body.contains(&0)
    } else {
        !frame.body.is_empty()
    };
    if with_length {
        out.put_slice(CONTENT_LENGTH.as_bytes());
        out.put_u8(b':');
        write_decimal(out, frame.body.len() as u64);
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.put_slice(&frame.body);
    out.put_u8(0);
}

fn write_escaped(out: &mut BytesMut, text: &[u8], table: &[u8; 256]) {
    let mut copied = 0;
    for (i, &b) in text.iter().enumerate() {
        let action = table[b as usize];
        if action == PASS {
            continue;
        }
        out.put_slice(&text[copied..i]);
        if action == REPLACE {
            out.put_u8(b' ');
        } else {
            out.put_slice(&[b'\\', action]);
        }
        copied = i + 1;
    }
    out.put_slice(&text[copied..]);
}

/// Decimal without going through `fmt`, which would allocate or need a `Write` adapter.
fn write_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[start..]);
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
