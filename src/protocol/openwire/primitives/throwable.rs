//! [`Throwable`] (T): a Java exception as OpenWire carries it, how the [`Reader`] and the
//! [`Writer`] decode and encode it, and the message cut of v1 and v10.
//!
//! # Layout
//!
//! ```text
//! bool notNull ; if notNull:
//!     S className ; S message
//!     if StackTraceEnabled (negotiated):
//!         i16 n ; n x ( S declaringClass ; S methodName ; S fileName ; i32 lineNumber )
//!         T cause          (recursive, with its own notNull)
//! ```
//!
//! Writing at v1 or v10, a message longer than 1024 UTF-16 units is cut to its first 1021
//! and "..." (those two versions' `cutMessageIfNeeded`; the other versions write it
//! whole). Nothing else here differs between versions 1 to 12.

use super::writer::array_len;
use super::{OpenWireError, Reader, Result, Writer};

/// A Java exception as OpenWire carries it (ExceptionResponse, ConnectionError,
/// MessageAck.poisonCause). The client rebuilds it with `Class.forName(class_name)` and a
/// `(String)` constructor, so the class must exist on its classpath (e.g.
/// `javax.jms.JMSException`, `javax.jms.InvalidClientIDException`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Throwable {
    pub class_name: Option<String>,
    pub message: Option<String>,
    /// Only on the wire when StackTraceEnabled was negotiated (Tandem turns it off).
    pub stack_trace: Vec<StackTraceElement>,
    /// Only on the wire when StackTraceEnabled was negotiated.
    pub cause: Option<Box<Throwable>>,
}

impl Throwable {
    /// An exception of class `class_name` with `message`, no trace and no cause.
    pub fn new(class_name: &str, message: &str) -> Throwable {
        Throwable {
            class_name: Some(class_name.to_owned()),
            message: Some(message.to_owned()),
            stack_trace: Vec::new(),
            cause: None,
        }
    }
}

/// One frame of a Java stack trace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StackTraceElement {
    pub class_name: Option<String>,
    pub method_name: Option<String>,
    pub file_name: Option<String>,
    pub line_number: i32,
}

impl Reader {
    /// T: a nullable throwable; stack trace and cause only when negotiated.
    pub(crate) fn throwable(&mut self) -> Result<Option<Throwable>> {
        if !self.bool()? {
            return Ok(None);
        }
        let class_name = self.string()?;
        let message = self.string()?;
        let mut t = Throwable {
            class_name,
            message,
            stack_trace: Vec::new(),
            cause: None,
        };
        if self.stack_trace_enabled() {
            let n = self.i16()?;
            let n = usize::try_from(n).map_err(|_| OpenWireError::NegativeLength {
                what: "stack trace length",
                value: i64::from(n),
            })?;
            // Each element takes at least 7 bytes (three null flags and a line number).
            t.stack_trace.reserve(n.min(self.remaining() / 7));
            for _ in 0..n {
                t.stack_trace.push(StackTraceElement {
                    class_name: self.string()?,
                    method_name: self.string()?,
                    file_name: self.string()?,
                    line_number: self.i32()?,
                });
            }
            t.cause = self.deeper(|r| r.throwable())?.map(Box::new);
        }
        Ok(Some(t))
    }
}

impl Writer<'_> {
    /// T. Without negotiated stack traces the trace and the cause are not written.
    pub(crate) fn throwable(&mut self, t: Option<&Throwable>) -> Result<()> {
        self.bool(t.is_some());
        let Some(t) = t else { return Ok(()) };
        self.string(t.class_name.as_deref())?;
        match t.message.as_deref() {
            Some(m) if CUTS_THROWABLE_MESSAGES.contains(&self.version()) => {
                self.string(Some(&cut_message(m)))?
            }
            m => self.string(m)?,
        }
        if self.stack_trace_enabled() {
            self.i16(array_len(t.stack_trace.len())?);
            for e in &t.stack_trace {
                self.string(e.class_name.as_deref())?;
                self.string(e.method_name.as_deref())?;
                self.string(e.file_name.as_deref())?;
                self.i32(e.line_number);
            }
            self.throwable(t.cause.as_deref())?;
        }
        Ok(())
    }
}

/// The versions whose marshallers cut a throwable's message (`cutMessageIfNeeded`,
/// only in the v1 and v10 `BaseDataStreamMarshaller`).
const CUTS_THROWABLE_MESSAGES: [i32; 2] = [1, 10];
/// Longest throwable message (UTF-16 units) those versions write whole.
const THROWABLE_MESSAGE_MAX_UNITS: usize = 1024;

/// Java's `cutMessageIfNeeded`: a message longer than 1024 UTF-16 units becomes its
/// first 1021 units and "...". Where Java would cut a surrogate pair in two (and write
/// a lone surrogate), this cuts before the pair.
pub(crate) fn cut_message(message: &str) -> std::borrow::Cow<'_, str> {
    if message.encode_utf16().count() <= THROWABLE_MESSAGE_MAX_UNITS {
        return std::borrow::Cow::Borrowed(message);
    }
    let keep_units = THROWABLE_MESSAGE_MAX_UNITS - 3;
    let mut units = 0;
    let mut end = 0;
    for (i, c) in message.char_indices() {
        if units + c.len_utf16() > keep_units {
            break;
        }
        units += c.len_utf16();
        end = i + c.len_utf8();
    }
    std::borrow::Cow::Owned(format!("{}...", &message[..end]))
}
