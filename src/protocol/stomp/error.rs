//! Errors raised while decoding STOMP bytes or negotiating a session.
//!
//! Every variant renders as a one-line message fit for the `message` header of an `ERROR`
//! frame (see [`StompError::to_error_frame`]): after a framing error the byte stream cannot
//! be resynchronised, so the session sends that frame and closes the connection.

use super::frame::Frame;

/// Longest excerpt of peer-supplied bytes quoted back in an error message; bounded so a
/// hostile peer cannot make us echo megabytes into an ERROR frame or a log line.
const EXCERPT_CHARS_MAX: usize = 64;

/// A STOMP protocol violation. `Clone` so a poisoned decoder can repeat its verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StompError {
    /// The whole frame (command, headers, body, NUL) would exceed `Limits::max_frame_bytes`.
    #[error("frame exceeds the maximum frame size of {limit} bytes")]
    FrameTooLarge { limit: usize },
    /// One header line exceeds `Limits::max_header_bytes`.
    #[error("header line exceeds the maximum header size of {limit} bytes")]
    HeaderTooLarge { limit: usize },
    /// More header lines than `Limits::max_headers`.
    #[error("frame has more than the maximum of {limit} headers")]
    TooManyHeaders { limit: usize },
    /// The command line exceeds `Limits::max_command_bytes`.
    #[error("command line exceeds the maximum command size of {limit} bytes")]
    CommandTooLong { limit: usize },
    /// The first line of the frame is not a STOMP command.
    #[error("unknown command: '{0}'")]
    UnknownCommand(String),
    /// A header line without ':' or with an empty name.
    #[error("malformed header: '{0}'")]
    MalformedHeader(String),
    /// A backslash sequence the negotiated version does not define (e.g. `\t`, or `\r` in 1.1).
    #[error("invalid escape sequence '{0}' in header")]
    InvalidEscape(String),
    /// A header name or value is not UTF-8.
    #[error("header is not valid UTF-8")]
    InvalidUtf8,
    /// The `content-length` header is not a decimal byte count.
    #[error("invalid content-length: '{0}'")]
    BadContentLength(String),
    /// The byte after a `content-length` body is not NUL.
    #[error("frame body is not terminated by NUL where content-length says it ends")]
    MissingNul,
    /// Framing broken in a way no other variant names (stray CR, NUL inside the headers).
    #[error("malformed frame: {0}")]
    MalformedFrame(&'static str),
    /// A `heart-beat` header that is not `cx,cy`.
    #[error("invalid heart-beat header: '{0}'")]
    BadHeartBeat(String),
}

impl StompError {
    /// The `ERROR` frame that tells the peer why its connection is about to close.
    pub fn to_error_frame(&self) -> Frame {
        Frame::error(&self.to_string())
    }
}

/// Peer bytes rendered for an error message: lossy UTF-8, cut to a bounded length.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(EXCERPT_CHARS_MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}
