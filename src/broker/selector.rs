//! JMS 1.1 message selectors: parse once at subscribe time, evaluate per message.
//!
//! The reference is the JMS 1.1 `javax.jms.Message` javadoc (spec §3.8.1) and, where
//! JMS is silent, what ActiveMQ Classic's `SelectorParser.jj` accepts.
//!
//! # Grammar
//!
//! Loosest binding first; binary operators at one level associate to the left.
//!
//! ```text
//! selector   := or                                  -- must be boolean (or an identifier)
//! or         := and { OR and }
//! and        := not { AND not }
//! not        := NOT not | equality
//! equality   := comparison { ('=' | '<>') comparison | IS [NOT] NULL }
//! comparison := additive { ('<' | '<=' | '>' | '>=') additive
//!                        | [NOT] LIKE string [ESCAPE string]
//!                        | [NOT] BETWEEN additive AND additive
//!                        | [NOT] IN '(' string { ',' string } ')' }   -- left side: identifier
//! additive   := multiplicative { ('+' | '-') multiplicative }
//! multiplicative := unary { ('*' | '/' | '%') unary }
//! unary      := ('+' | '-') unary | primary
//! primary    := literal | identifier | '(' or ')'
//! literal    := string | integer | float | TRUE | FALSE | NULL
//! string     := "'" { any character but "'" | "''" } "'"
//! integer    := ( [1-9][0-9]* | 0[0-7]* | 0[xX][0-9a-fA-F]+ ) [lL]       -- Java syntax
//! float      := ( digits '.' [digits] [exp] | '.' digits [exp] | digits exp
//!               | digits ['.' [digits]] [exp] [fFdD] )                  -- Java syntax
//! identifier := Java identifier start { Java identifier part }, not a keyword
//! ```
//!
//! Keywords (`NOT AND OR BETWEEN LIKE ESCAPE IN IS TRUE FALSE NULL`) are
//! case-insensitive; identifiers are case-sensitive. Whitespace, `-- line` and
//! `/* block */` comments are skipped (ActiveMQ accepts comments, so we do too).
//! `%` (modulo) is an ActiveMQ extension kept for compatibility. A selector that is
//! empty or only whitespace selects everything, as JMS specifies. ActiveMQ's
//! `convert_string_expressions:` prefix is honoured (see below).
//!
//! Unlike ActiveMQ, whose grammar puts `NOT` among the unary operators so that
//! `NOT a = 1` means `(NOT a) = 1`, `NOT` here binds looser than comparisons as in
//! SQL-92 and JMS: `NOT a = 1` is `NOT (a = 1)`.
//!
//! Static checks, mirroring what ActiveMQ rejects when a consumer subscribes:
//! `AND`/`OR`/`NOT` and the whole selector need boolean operands; arithmetic,
//! `< <= > >=` and `BETWEEN` need numeric ones (so `s < 'abc'` is an error, strings
//! and booleans only support `=` and `<>`); `NULL` cannot be an operand of `=`/`<>`
//! (write `IS NULL`); `IN` needs an identifier on its left.
//!
//! # Evaluation
//!
//! SQL three-valued logic: a missing property is NULL, and a comparison or
//! arithmetic involving NULL is UNKNOWN; `NOT UNKNOWN` is UNKNOWN; `AND` is FALSE if
//! either side is FALSE, `OR` TRUE if either side is TRUE. A message is selected
//! only if the selector is TRUE.
//!
//! Comparing values of different types ("non-like types": a string with a number, a
//! boolean with a string, `LIKE`/`IN` on a number) is FALSE, not UNKNOWN, because
//! JMS §3.8.1.1 says so, and ActiveMQ agrees. So `NOT (price > 10)` selects a message
//! whose `price` is the string `"20"`. Numbers compare across long/double by Java
//! promotion. Long arithmetic wraps as Java's does; integer division by zero is
//! UNKNOWN (Java would throw, leaving the message unselected).
//!
//! Deliberate differences from ActiveMQ, all where ActiveMQ departs from JMS:
//! `a <> 1` with a string `a` is FALSE (ActiveMQ: `NOT (a = 1)`, i.e. TRUE); `NOT
//! LIKE` and `NOT IN` on a non-string are FALSE (ActiveMQ: TRUE); two NULLs are
//! never `=` (ActiveMQ: TRUE); ordering comparisons of two string properties are
//! FALSE (ActiveMQ: lexicographic); `'a' + 'b'` is an error (ActiveMQ concatenates).
//!
//! # Property types: STOMP strings and the typed-properties hook
//!
//! STOMP headers are strings, and ActiveMQ keeps them so in selectors: with header
//! `price:20`, `price > 10` compares a string with a number and is FALSE. We keep
//! that strict behaviour. A client that wants numeric comparisons on STOMP headers
//! can opt in per selector the ActiveMQ way, by prefixing the selector with
//! `convert_string_expressions:`; a string compared with a number or boolean is then
//! parsed as one (FALSE if it does not parse).
//!
//! Values reach the evaluator through [`SelectorContext`], which returns a [`Value`]
//! that is already typed. JMS (OpenWire) producers send typed properties
//! (byte/short/int/long/float/double/boolean; strings are headers):
//! `impl SelectorContext for Message` looks them up first and maps integers to
//! [`Value::Long`] and floats to [`Value::Double`] (a Java `float` widened with
//! `f64::from`, which is exactly Java's promotion).
//!
//! # Robustness
//!
//! Selectors come from clients. Parsing never panics and is bounded: text longer
//! than [`MAX_SELECTOR_LEN`] bytes and expressions nested deeper than [`MAX_DEPTH`]
//! levels (parentheses, prefix operators, or the height of the expression tree) are
//! rejected with typed errors, so parsing, evaluation and dropping a selector never
//! recurse deeply. `AND`/`OR` chains are stored flat and do not count against depth.

mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use super::message::{Message, PropValue};

/// Longest selector text accepted, in bytes.
pub const MAX_SELECTOR_LEN: usize = 64 * 1024;

/// Deepest nesting accepted: parentheses and prefix operators while parsing, and
/// the height of the resulting expression tree.
pub const MAX_DEPTH: usize = 100;

/// ActiveMQ's opt-in for parsing string properties as numbers/booleans when they
/// are compared with one.
pub const CONVERT_STRING_EXPRESSIONS_PREFIX: &str = "convert_string_expressions:";

/// A value an identifier evaluates to. Strings borrow from the message when they
/// can, so evaluating `type = 'x'` copies nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// Missing property or absent header: SQL NULL.
    Null,
    Bool(bool),
    /// Every JMS integer type (byte, short, int, long).
    Long(i64),
    /// Both JMS floating types (float, double).
    Double(f64),
    Str(Cow<'a, str>),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Str(Cow::Borrowed(s))
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(Value::Null, Value::from)
    }
}

/// Where a selector reads header fields and properties from.
pub trait SelectorContext {
    /// The value of `identifier` (a JMS header name such as `JMSPriority`, or a
    /// property name), or [`Value::Null`] if the message has none.
    fn value(&self, identifier: &str) -> Value<'_>;
}

/// Why a selector was rejected. Columns are 1-based and count characters.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SelectorError {
    #[error("selector is {len} bytes long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("selector nests deeper than {max} levels at column {column}")]
    TooDeep { column: usize, max: usize },
    #[error("unexpected character '{ch}' at column {column}")]
    UnexpectedChar { ch: char, column: usize },
    #[error("unterminated string literal starting at column {column}")]
    UnterminatedString { column: usize },
    #[error("unterminated comment starting at column {column}")]
    UnterminatedComment { column: usize },
    #[error("invalid number '{text}' at column {column}: {reason}")]
    InvalidNumber {
        text: String,
        column: usize,
        reason: &'static str,
    },
    #[error("unexpected token '{found}' at column {column}; expected {expected}")]
    UnexpectedToken {
        found: String,
        column: usize,
        expected: &'static str,
    },
    #[error("unexpected end of selector at column {column}; expected {expected}")]
    UnexpectedEnd {
        column: usize,
        expected: &'static str,
    },
    #[error("{what} at column {column}")]
    Type { what: &'static str, column: usize },
    #[error("ESCAPE must be a single character, at column {column}")]
    BadEscape { column: usize },
}

impl SelectorError {
    /// The 1-based character column the error points at, if it has one.
    pub fn column(&self) -> Option<usize> {
        use SelectorError::*;
        match self {
            TooLong { .. } => None,
            TooDeep { column, .. }
            | UnexpectedChar { column, .. }
            | UnterminatedString { column }
            | UnterminatedComment { column }
            | InvalidNumber { column, .. }
            | UnexpectedToken { column, .. }
            | UnexpectedEnd { column, .. }
            | Type { column, .. }
            | BadEscape { column } => Some(*column),
        }
    }
}

/// A parsed selector. Cheap to evaluate; parse once per subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct Selector {
    text: Box<str>,
    /// `None` for an empty selector, which selects everything.
    root: Option<parser::Expr>,
    opts: eval::Options,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        if text.len() > MAX_SELECTOR_LEN {
            return Err(SelectorError::TooLong {
                len: text.len(),
                max: MAX_SELECTOR_LEN,
            });
        }
        let (body, convert_strings) = match text.strip_prefix(CONVERT_STRING_EXPRESSIONS_PREFIX) {
            Some(rest) => (rest, true),
            None => (text, false),
        };
        let root = if body.trim().is_empty() {
            None
        } else {
            // Columns in errors should point into what the client sent.
            Some(parser::parse(body).map_err(|e| shift(e, text.len() - body.len()))?)
        };
        Ok(Selector {
            text: text.into(),
            root,
            opts: eval::Options { convert_strings },
        })
    }

    /// True if the selector evaluates to TRUE for `msg` (FALSE and UNKNOWN both
    /// reject).
    pub fn matches(&self, msg: &dyn SelectorContext) -> bool {
        match &self.root {
            None => true,
            Some(root) => eval::matches(root, msg, self.opts),
        }
    }

    /// True for an empty selector, which callers may treat as "no selector".
    pub fn selects_all(&self) -> bool {
        self.root.is_none()
    }

    /// The selector text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Moves an error's column past a prefix stripped before parsing (the prefix is
/// ASCII, so bytes and characters agree).
fn shift(e: SelectorError, by: usize) -> SelectorError {
    use SelectorError::*;
    match e {
        TooDeep { column, max } => TooDeep {
            column: column + by,
            max,
        },
        UnexpectedChar { ch, column } => UnexpectedChar {
            ch,
            column: column + by,
        },
        UnterminatedString { column } => UnterminatedString {
            column: column + by,
        },
        UnterminatedComment { column } => UnterminatedComment {
            column: column + by,
        },
        InvalidNumber {
            text,
            column,
            reason,
        } => InvalidNumber {
            text,
            column: column + by,
            reason,
        },
        UnexpectedToken {
            found,
            column,
            expected,
        } => UnexpectedToken {
            found,
            column: column + by,
            expected,
        },
        UnexpectedEnd { column, expected } => UnexpectedEnd {
            column: column + by,
            expected,
        },
        Type { what, column } => Type {
            what,
            column: column + by,
        },
        BadEscape { column } => BadEscape {
            column: column + by,
        },
        e @ TooLong { .. } => e,
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// JMS header fields map onto the message's own fields (or the STOMP header that
/// carries them); every other identifier is a property: a typed one (from a JMS
/// producer) if the message has it, else a header of that name, always a string (see
/// the module doc).
impl SelectorContext for Message {
    fn value(&self, identifier: &str) -> Value<'_> {
        let ms = |v: u64| Value::Long(i64::try_from(v).unwrap_or(i64::MAX));
        match identifier {
            "JMSMessageID" => Value::from(self.id.as_str()),
            "JMSPriority" => Value::Long(self.priority.into()),
            "JMSTimestamp" => ms(self.timestamp_ms),
            "JMSExpiration" => ms(self.expires_ms),
            "JMSDeliveryMode" => Value::from(if self.persistent {
                "PERSISTENT"
            } else {
                "NON_PERSISTENT"
            }),
            "JMSCorrelationID" => self.header("correlation-id").into(),
            "JMSType" => self.header("type").into(),
            "JMSReplyTo" => self.reply_to.as_deref().into(),
            other => match self.property(other) {
                Some(p) => typed(p),
                None => self.header(other).into(),
            },
        }
    }
}

/// A typed JMS property as a selector value: integers widen to long, floats to double
/// (Java's promotion), opaque values are NULL.
fn typed(p: &PropValue) -> Value<'static> {
    match *p {
        PropValue::Bool(v) => Value::Bool(v),
        PropValue::Byte(v) => Value::Long(v.into()),
        PropValue::Short(v) => Value::Long(v.into()),
        PropValue::Int(v) => Value::Long(v.into()),
        PropValue::Long(v) => Value::Long(v),
        PropValue::Float(v) => Value::Double(f64::from(v)),
        PropValue::Double(v) => Value::Double(v),
        PropValue::Opaque(_) => Value::Null,
    }
}
