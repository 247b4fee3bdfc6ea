//! The STOMP frame: a command, ordered headers and an opaque body.
//!
//! Byte-level format and escaping live in [`super::codec`]; this file only holds the
//! decoded shape and builders for the frames a server sends.

use std::fmt;

use bytes::Bytes;

use super::version::Version;

/// Every STOMP command, client and server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    // Client -> server.
    Connect,
    /// The 1.1+ alias of CONNECT that HTTP-sniffing proxies will not mistake for HTTP.
    Stomp,
    Send,
    Subscribe,
    Unsubscribe,
    Ack,
    Nack,
    Begin,
    Commit,
    Abort,
    Disconnect,
    // Server -> client.
    Connected,
    Message,
    Receipt,
    Error,
}

impl Command {
    /// The command as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Connected => "CONNECTED",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Parses a command line (without its EOL). Case-sensitive, as the spec says.
    pub fn from_bytes(line: &[u8]) -> Option<Command> {
        Some(match line {
            b"CONNECT" => Command::Connect,
            b"STOMP" => Command::Stomp,
            b"SEND" => Command::Send,
            b"SUBSCRIBE" => Command::Subscribe,
            b"UNSUBSCRIBE" => Command::Unsubscribe,
            b"ACK" => Command::Ack,
            b"NACK" => Command::Nack,
            b"BEGIN" => Command::Begin,
            b"COMMIT" => Command::Commit,
            b"ABORT" => Command::Abort,
            b"DISCONNECT" => Command::Disconnect,
            b"CONNECTED" => Command::Connected,
            b"MESSAGE" => Command::Message,
            b"RECEIPT" => Command::Receipt,
            b"ERROR" => Command::Error,
            _ => return None,
        })
    }

    /// True for frames a client sends.
    pub fn is_client(self) -> bool {
        !self.is_server()
    }

    /// True for frames a server sends.
    pub fn is_server(self) -> bool {
        matches!(
            self,
            Command::Connected | Command::Message | Command::Receipt | Command::Error
        )
    }

    /// CONNECT, STOMP and CONNECTED carry their headers unescaped in every version, because
    /// they are exchanged before (or while) the version that defines escaping is agreed.
    pub fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One STOMP frame, headers unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub command: Command,
    /// In wire order. Repeats are kept (the spec lets a header repeat; only the first
    /// occurrence counts, and a relay must preserve the rest), so this is not a map.
    pub headers: Vec<(String, String)>,
    /// The body as received: shares the read buffer's allocation, no copy. May contain NUL
    /// when the frame carried `content-length`.
    pub body: Bytes,
    /// MESSAGE only: leave `content-length` out, as ActiveMQ does for a text message
    /// (the body then ends at the NUL, so only for bodies without one). Decoded frames:
    /// false.
    pub without_content_length: bool,
}

impl Frame {
    /// A frame with no headers and an empty body.
    pub fn new(command: Command) -> Frame {
        Frame {
            command,
            headers: Vec::new(),
            body: Bytes::new(),
            without_content_length: false,
        }
    }

    /// The value of the first header called `name`: the spec says later repeats are ignored.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Appends a header (builder style).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Frame {
        self.push_header(name, value);
        self
    }

    /// Appends a header.
    pub fn push_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }

    /// Sets the body (builder style).
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Frame {
        self.body = body.into();
        self
    }

    /// CONNECTED announcing the negotiated version. Add `server`, `session` and
    /// `heart-beat` with [`Frame::with_header`].
    pub fn connected(version: Version) -> Frame {
        Frame::new(Command::Connected).with_header("version", version.as_str())
    }

    /// MESSAGE for a subscriber. 1.1+ clients need `subscription` too (and `ack` in 1.2
    /// for client acknowledgement modes); add them with [`Frame::with_header`].
    pub fn message(destination: &str, message_id: &str) -> Frame {
        Frame::new(Command::Message)
            .with_header("destination", destination)
            .with_header("message-id", message_id)
    }

    /// RECEIPT answering a client frame's `receipt` header.
    pub fn receipt(receipt_id: &str) -> Frame {
        Frame::new(Command::Receipt).with_header("receipt-id", receipt_id)
    }

    /// ERROR with a short `message` header. Add `receipt-id` when the failed frame asked
    /// for a receipt, and a body for details.
    pub fn error(message: &str) -> Frame {
        Frame::new(Command::Error).with_header("message", message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    #[test]
    fn command_names_round_trip() {
        for c in ALL {
            assert_eq!(Command::from_bytes(c.as_str().as_bytes()), Some(c));
        }
        assert_eq!(Command::from_bytes(b"send"), None);
        assert_eq!(Command::from_bytes(b"SEND "), None);
        assert_eq!(Command::from_bytes(b""), None);
        assert_eq!(ALL.iter().filter(|c| c.is_server()).count(), 4);
    }

    #[test]
    fn first_header_wins() {
        let f = Frame::new(Command::Send)
            .with_header("destination", "/queue/a")
            .with_header("destination", "/queue/b");
        assert_eq!(f.header("destination"), Some("/queue/a"));
        assert_eq!(f.header("missing"), None);
        assert_eq!(f.headers.len(), 2);
    }

    #[test]
    fn server_builders() {
        let c = Frame::connected(Version::V1_2).with_header("server", "tandem/0.1");
        assert_eq!(c.command, Command::Connected);
        assert_eq!(c.header("version"), Some("1.2"));
        let m = Frame::message("/queue/a", "id-1").with_header("subscription", "0");
        assert_eq!(m.header("message-id"), Some("id-1"));
        assert_eq!(m.header("subscription"), Some("0"));
        assert_eq!(Frame::receipt("r7").header("receipt-id"), Some("r7"));
        assert_eq!(Frame::error("boom").header("message"), Some("boom"));
    }
}
