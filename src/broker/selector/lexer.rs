//! Tokenizer for selector text. Tokens carry the byte offset where they start so that
//! errors can point at them; the grammar itself lives in the parent module's doc.

use super::SelectorError;

/// Reserved words. Matched case-insensitively; never valid as identifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Keyword {
    Not,
    And,
    Or,
    Between,
    Like,
    Escape,
    In,
    Is,
    True,
    False,
    Null,
}

impl Keyword {
    fn lookup(word: &str) -> Option<Keyword> {
        const TABLE: [(&str, Keyword); 11] = [
            ("NOT", Keyword::Not),
            ("AND", Keyword::And),
            ("OR", Keyword::Or),
            ("BETWEEN", Keyword::Between),
            ("LIKE", Keyword::Like),
            ("ESCAPE", Keyword::Escape),
            ("IN", Keyword::In),
            ("IS", Keyword::Is),
            ("TRUE", Keyword::True),
            ("FALSE", Keyword::False),
            ("NULL", Keyword::Null),
        ];
        TABLE
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(word))
            .map(|&(_, kw)| kw)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    /// Magnitude of an integer literal. It may be 2^63, which is only valid directly
    /// after a unary minus (`-9223372036854775808`); the parser decides.
    Int(u64),
    Float(f64),
    Kw(Keyword),
    LParen,
    RParen,
    Comma,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eof,
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub tok: Tok,
    /// Byte offsets into the selector text: `start..end`.
    pub start: usize,
    pub end: usize,
}

/// 1-based character column of a byte offset, for error messages.
pub(super) fn column(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |s| s.chars().count()) + 1
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_ident_part(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Splits the whole selector into tokens, ending with [`Tok::Eof`].
pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, SelectorError> {
    let mut lx = Lexer { text, pos: 0 };
    let mut out = Vec::new();
    loop {
        let t = lx.next_token()?;
        let eof = t.tok == Tok::Eof;
        out.push(t);
        if eof {
            return Ok(out);
        }
    }
}

struct Lexer<'t> {
    text: &'t str,
    pos: usize,
}

impl<'t> Lexer<'t> {
    fn rest(&self) -> &'t str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn col(&self, offset: usize) -> usize {
        column(self.text, offset)
    }

    /// Whitespace and comments. ActiveMQ accepts SQL `-- line` and `/* block */`
    /// comments, so a selector written for it may contain them.
    fn skip_trivia(&mut self) -> Result<(), SelectorError> {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r', '\u{c}']);
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("--") {
                self.pos += trimmed.find(['\n', '\r']).unwrap_or(trimmed.len());
            } else if let Some(body) = trimmed.strip_prefix("/*") {
                match body.find("*/") {
                    Some(i) => self.pos += 2 + i + 2,
                    None => {
                        return Err(SelectorError::UnterminatedComment {
                            column: self.col(self.pos),
                        })
                    }
                }
            } else {
                return Ok(());
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, SelectorError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(Token {
                tok: Tok::Eof,
                start,
                end: start,
            });
        };
        let tok = match c {
            '\'' => self.string()?,
            '0'..='9' => self.number()?,
            '.' if self.peek2().is_some_and(|d| d.is_ascii_digit()) => self.number()?,
            c if is_ident_start(c) => {
                let len = self
                    .rest()
                    .find(|c: char| !is_ident_part(c))
                    .unwrap_or(self.rest().len());
                let word = &self.rest()[..len];
                self.pos += len;
                match Keyword::lookup(word) {
                    Some(kw) => Tok::Kw(kw),
                    None => Tok::Ident(word.to_owned()),
                }
            }
            _ => {
                let two = |lx: &mut Self, t| {
                    lx.pos += 2;
                    t
                };
                let one = |lx: &mut Self, t| {
                    lx.pos += 1;
                    t
                };
                match (c, self.peek2()) {
                    ('<', Some('>')) => two(self, Tok::Ne),
                    ('<', Some('=')) => two(self, Tok::Le),
                    ('>', Some('=')) => two(self, Tok::Ge),
                    ('<', _) => one(self, Tok::Lt),
                    ('>', _) => one(self, Tok::Gt),
                    ('=', _) => one(self, Tok::Eq),
                    ('(', _) => one(self, Tok::LParen),
                    (')', _) => one(self, Tok::RParen),
                    (',', _) => one(self, Tok::Comma),
                    ('+', _) => one(self, Tok::Plus),
                    ('-', _) => one(self, Tok::Minus),
                    ('*', _) => one(self, Tok::Star),
                    ('/', _) => one(self, Tok::Slash),
                    ('%', _) => one(self, Tok::Percent),
                    _ => {
                        return Err(SelectorError::UnexpectedChar {
                            ch: c,
                            column: self.col(start),
                        })
                    }
                }
            }
        };
        Ok(Token {
            tok,
            start,
            end: self.pos,
        })
    }

    /// `'...'` with `''` standing for one quote; any other character is literal.
    fn string(&mut self) -> Result<Tok, SelectorError> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            let rest = self.rest();
            let Some(q) = rest.find('\'') else {
                return Err(SelectorError::UnterminatedString {
                    column: self.col(start),
                });
            };
            value.push_str(&rest[..q]);
            self.pos += q + 1;
            if self.peek() == Some('\'') {
                value.push('\'');
                self.pos += 1;
            } else {
                return Ok(Tok::Str(value));
            }
        }
    }

    /// Java literal syntax, as JMS prescribes: decimal, `0x` hex and `0` octal
    /// integers with an optional `L`; floats with a point and/or exponent and an
    /// optional `F`/`D`.
    fn number(&mut self) -> Result<Tok, SelectorError> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let digits_from = |mut i: usize, pred: fn(&u8) -> bool| {
            while i < bytes.len() && pred(&bytes[i]) {
                i += 1;
            }
            i
        };
        let at = |i: usize| bytes.get(i).copied();
        let invalid = |lx: &Self, end: usize, reason: &'static str| SelectorError::InvalidNumber {
            text: lx.text[start..end.min(lx.text.len())].to_owned(),
            column: lx.col(start),
            reason,
        };

        let mut i;
        let tok;
        if at(start) == Some(b'0') && matches!(at(start + 1), Some(b'x' | b'X')) {
            i = digits_from(start + 2, u8::is_ascii_hexdigit);
            if i == start + 2 {
                return Err(invalid(self, i, "hexadecimal literal has no digits"));
            }
            let v = u64::from_str_radix(&self.text[start + 2..i], 16);
            if matches!(at(i), Some(b'l' | b'L')) {
                i += 1;
            }
            tok = Tok::Int(int_in_range(v).ok_or_else(|| invalid(self, i, "out of range"))?);
        } else {
            i = digits_from(start, u8::is_ascii_digit);
            let int_end = i;
            let mut is_float = false;
            if at(i) == Some(b'.') {
                is_float = true;
                i = digits_from(i + 1, u8::is_ascii_digit);
            }
            if matches!(at(i), Some(b'e' | b'E')) {
                is_float = true;
                let mut j = i + 1;
                if matches!(at(j), Some(b'+' | b'-')) {
                    j += 1;
                }
                let k = digits_from(j, u8::is_ascii_digit);
                if k == j {
                    return Err(invalid(self, k, "exponent has no digits"));
                }
                i = k;
            }
            let body = &self.text[start..i];
            match at(i) {
                Some(b'f' | b'F') => {
                    i += 1;
                    // A Java float literal: round to f32 first, exactly as Java would,
                    // so `0.1F` is not equal to `0.1`.
                    let v: f32 = body.parse().map_err(|_| invalid(self, i, "malformed"))?;
                    tok = Tok::Float(f64::from(v));
                }
                Some(b'd' | b'D') => {
                    i += 1;
                    tok = Tok::Float(body.parse().map_err(|_| invalid(self, i, "malformed"))?);
                }
                _ if is_float => {
                    tok = Tok::Float(body.parse().map_err(|_| invalid(self, i, "malformed"))?);
                }
                _ => {
                    let (digits, radix) = if body.len() > 1 && body.starts_with('0') {
                        (&body[1..], 8)
                    } else {
                        (body, 10)
                    };
                    if radix == 8 && digits.bytes().any(|b| b > b'7') {
                        return Err(invalid(self, int_end, "not a valid octal literal"));
                    }
                    let v = u64::from_str_radix(digits, radix);
                    if matches!(at(i), Some(b'l' | b'L')) {
                        i += 1;
                    }
                    tok =
                        Tok::Int(int_in_range(v).ok_or_else(|| invalid(self, i, "out of range"))?);
                }
            }
        }
        // `12abc` or `1.5x` would otherwise lex as two tokens and give a confusing
        // parse error one token later.
        self.pos = i;
        if self.peek().is_some_and(|c| is_ident_part(c) || c == '.') {
            let end = self
                .rest()
                .find(|c: char| !(is_ident_part(c) || c == '.'))
                .map_or(self.text.len(), |n| self.pos + n);
            return Err(invalid(self, end, "malformed"));
        }
        Ok(tok)
    }
}

/// Integer magnitudes up to 2^63 (so that `-9223372036854775808` can be written).
fn int_in_range(v: Result<u64, std::num::ParseIntError>) -> Option<u64> {
    v.ok().filter(|&v| v <= 1u64 << 63)
}
