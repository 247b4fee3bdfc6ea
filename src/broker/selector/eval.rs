//! Evaluation of a parsed selector against one message, in SQL three-valued logic.
//!
//! Boolean-valued expressions evaluate to `Value::Bool` or `Value::Null`, the latter
//! being SQL's UNKNOWN. Recursion is bounded by the tree height the parser enforces.

use std::cmp::Ordering;

use super::parser::{ArithOp, CmpOp, Expr};
use super::{SelectorContext, Value};

/// Outcome of comparing two values whose types JMS does not allow to be compared
/// (a string with a number, a boolean with a string, an ordering test on strings,
/// ...). JMS 1.1 §3.8.1.1: "If the comparison of non-like type values is attempted,
/// the value of the operation is false" — FALSE, not UNKNOWN, so `NOT (s > 1)` holds
/// for a string `s`. ActiveMQ's `ComparisonExpression.compare` also answers FALSE.
const MISMATCH: Option<bool> = Some(false);

/// How the selector's evaluation treats strings compared with numbers or booleans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Options {
    /// ActiveMQ's `convert_string_expressions:` mode: a string compared with a
    /// number or boolean is parsed as one first (and compares FALSE if it does not
    /// parse).
    pub convert_strings: bool,
}

pub(super) fn matches(root: &Expr, ctx: &dyn SelectorContext, opts: Options) -> bool {
    truth(&eval(root, ctx, opts)) == Some(true)
}

/// A value in a boolean position. A non-boolean (say a string property used as
/// `NOT prop`) counts as FALSE, as in ActiveMQ's boolean cast.
pub(super) fn truth(v: &Value<'_>) -> Option<bool> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        _ => Some(false),
    }
}

fn from_truth(t: Option<bool>) -> Value<'static> {
    t.map_or(Value::Null, Value::Bool)
}

/// Values borrow from the selector (string literals) or the message, whichever
/// lives shorter; neither is copied.
pub(super) fn eval<'x>(e: &'x Expr, ctx: &'x dyn SelectorContext, opts: Options) -> Value<'x> {
    match e {
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Long(v) => Value::Long(*v),
        Expr::Double(v) => Value::Double(*v),
        Expr::Str(s) => Value::from(s.as_str()),
        Expr::Null => Value::Null,
        Expr::Ident(name) => ctx.value(name),
        Expr::Neg(x) => match eval(x, ctx, opts) {
            Value::Long(v) => Value::Long(v.wrapping_neg()),
            Value::Double(v) => Value::Double(-v),
            _ => Value::Null,
        },
        Expr::Pos(x) => match eval(x, ctx, opts) {
            v @ (Value::Long(_) | Value::Double(_)) => v,
            _ => Value::Null,
        },
        Expr::Arith(op, l, r) => arith(*op, &eval(l, ctx, opts), &eval(r, ctx, opts)),
        Expr::Cmp(op, l, r) => {
            from_truth(compare(*op, &eval(l, ctx, opts), &eval(r, ctx, opts), opts))
        }
        Expr::And(items) => {
            // FALSE wins over UNKNOWN; stop at the first FALSE.
            let mut result = Some(true);
            for item in items {
                match truth(&eval(item, ctx, opts)) {
                    Some(false) => return Value::Bool(false),
                    None => result = None,
                    Some(true) => {}
                }
            }
            from_truth(result)
        }
        Expr::Or(items) => {
            let mut result = Some(false);
            for item in items {
                match truth(&eval(item, ctx, opts)) {
                    Some(true) => return Value::Bool(true),
                    None => result = None,
                    Some(false) => {}
                }
            }
            from_truth(result)
        }
        Expr::Not(x) => from_truth(truth(&eval(x, ctx, opts)).map(|b| !b)),
        Expr::Between {
            negated,
            value,
            low,
            high,
        } => {
            let v = eval(value, ctx, opts);
            let lo = eval(low, ctx, opts);
            let hi = eval(high, ctx, opts);
            // JMS defines these as `v >= lo AND v <= hi` and `v < lo OR v > hi`.
            let t = if *negated {
                or(
                    compare(CmpOp::Lt, &v, &lo, opts),
                    compare(CmpOp::Gt, &v, &hi, opts),
                )
            } else {
                and(
                    compare(CmpOp::Ge, &v, &lo, opts),
                    compare(CmpOp::Le, &v, &hi, opts),
                )
            };
            from_truth(t)
        }
        Expr::Like {
            negated,
            value,
            pattern,
        } => from_truth(match eval(value, ctx, opts) {
            Value::Null => None,
            Value::Str(s) => Some(pattern.matches(&s) != *negated),
            // LIKE is a string comparison; other types are "non-like".
            _ => MISMATCH,
        }),
        Expr::In {
            negated,
            ident,
            list,
        } => from_truth(match ctx.value(ident) {
            Value::Null => None,
            Value::Str(s) => Some(list.iter().any(|x| *x == *s) != *negated),
            // Non-string values are non-like types for every list entry; the
            // whole operation is FALSE either way (the reading the Qpid brokers
            // take, QPID-6717), rather than NOT IN turning FALSEs into TRUE.
            _ => MISMATCH,
        }),
        Expr::IsNull { negated, value } => {
            Value::Bool(matches!(eval(value, ctx, opts), Value::Null) != *negated)
        }
    }
}

fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn compare(op: CmpOp, l: &Value<'_>, r: &Value<'_>, opts: Options) -> Option<bool> {
    use Value::*;
    let ord = match (l, r) {
        (Null, _) | (_, Null) => return None,
        (Long(a), Long(b)) => a.partial_cmp(b),
        // Java numeric promotion: long meets double as a double.
        (Long(a), Double(b)) => (*a as f64).partial_cmp(b),
        (Double(a), Long(b)) => a.partial_cmp(&(*b as f64)),
        (Double(a), Double(b)) => a.partial_cmp(b),
        // Strings and booleans only support = and <>.
        (Str(a), Str(b)) => return equality(op, a == b),
        (Bool(a), Bool(b)) => return equality(op, a == b),
        (Str(s), other) if opts.convert_strings => {
            return convert(s, other).map_or(MISMATCH, |v| compare(op, &v, other, opts))
        }
        (other, Str(s)) if opts.convert_strings => {
            return convert(s, other).map_or(MISMATCH, |v| compare(op, other, &v, opts))
        }
        _ => return MISMATCH,
    };
    Some(match ord {
        // NaN: IEEE says every comparison is false except `<>`.
        None => op == CmpOp::Ne,
        Some(o) => match op {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
        },
    })
}

fn equality(op: CmpOp, equal: bool) -> Option<bool> {
    match op {
        CmpOp::Eq => Some(equal),
        CmpOp::Ne => Some(!equal),
        _ => MISMATCH,
    }
}

/// `convert_string_expressions:` — the string parsed as the other side's type, the
/// way ActiveMQ does with `Long.valueOf` / `Double.valueOf` / `Boolean.valueOf`
/// (a string that does not parse makes the comparison FALSE, like any mismatch).
fn convert(s: &str, like: &Value<'_>) -> Option<Value<'static>> {
    let v = match like {
        Value::Long(_) => Value::Long(s.parse().ok()?),
        Value::Double(_) => Value::Double(s.trim().parse().ok()?),
        Value::Bool(_) => Value::Bool(s.eq_ignore_ascii_case("true")),
        _ => return None,
    };
    Some(v)
}

fn arith(op: ArithOp, l: &Value<'_>, r: &Value<'_>) -> Value<'static> {
    use Value::*;
    match (l, r) {
        // Java long arithmetic wraps; division or remainder by zero throws there,
        // which leaves the message unselected — UNKNOWN here.
        (Long(a), Long(b)) => match op {
            ArithOp::Add => Long(a.wrapping_add(*b)),
            ArithOp::Sub => Long(a.wrapping_sub(*b)),
            ArithOp::Mul => Long(a.wrapping_mul(*b)),
            ArithOp::Div => a.checked_div(*b).map_or_else(
                || {
                    if *b == 0 {
                        Null
                    } else {
                        Long(a.wrapping_div(*b))
                    }
                },
                Long,
            ),
            ArithOp::Mod => a
                .checked_rem(*b)
                .map_or_else(|| if *b == 0 { Null } else { Long(0) }, Long),
        },
        (Long(_) | Double(_), Long(_) | Double(_)) => {
            let (a, b) = (as_f64(l), as_f64(r));
            Double(match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => a / b,
                ArithOp::Mod => a % b,
            })
        }
        // NULL, or arithmetic on a non-number: "arithmetic with an unknown value
        // always yields an unknown value".
        _ => Null,
    }
}

fn as_f64(v: &Value<'_>) -> f64 {
    match v {
        Value::Long(x) => *x as f64,
        Value::Double(x) => *x,
        _ => f64::NAN,
    }
}

/// A compiled LIKE pattern: `%` any run of characters, `_` exactly one character,
/// everything else literal (no regex involved, so `.`, `*`, `[`... are ordinary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LikePattern {
    parts: Vec<LikePart>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LikePart {
    Char(char),
    One,
    Any,
}

impl LikePattern {
    /// The escape character makes a following `%`, `_` or escape character literal.
    /// Before anything else (or at the end) it stands for itself, as in ActiveMQ,
    /// rather than being an error as in SQL-92.
    pub(super) fn compile(pattern: &str, escape: Option<char>) -> LikePattern {
        let mut parts = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if Some(c) == escape {
                if let Some(&next) = chars.peek() {
                    if next == '%' || next == '_' || Some(next) == escape {
                        chars.next();
                        parts.push(LikePart::Char(next));
                        continue;
                    }
                }
                parts.push(LikePart::Char(c));
                continue;
            }
            parts.push(match c {
                '%' => {
                    // `%%` is the same as `%`; collapsing keeps matching linear-ish.
                    if parts.last() == Some(&LikePart::Any) {
                        continue;
                    }
                    LikePart::Any
                }
                '_' => LikePart::One,
                c => LikePart::Char(c),
            });
        }
        LikePattern { parts }
    }

    /// Wildcard matching with single-star backtracking: O(len(s) × len(pattern))
    /// worst case, no recursion, no allocation.
    pub(super) fn matches(&self, s: &str) -> bool {
        let p = &self.parts;
        let mut si = 0; // byte index into s
        let mut pi = 0;
        // Where to resume after the most recent `%`: (pattern index after it,
        // byte index in s it currently absorbs up to).
        let mut resume: Option<(usize, usize)> = None;
        loop {
            let c = s[si..].chars().next();
            match (p.get(pi), c) {
                (Some(LikePart::Any), _) => {
                    pi += 1;
                    resume = Some((pi, si));
                    continue;
                }
                (Some(LikePart::One), Some(c)) => {
                    pi += 1;
                    si += c.len_utf8();
                    continue;
                }
                (Some(LikePart::Char(pc)), Some(c)) if *pc == c => {
                    pi += 1;
                    si += c.len_utf8();
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            // Mismatch: let the last `%` swallow one more character and retry.
            match resume {
                Some((rp, rs)) => match s[rs..].chars().next() {
                    Some(c) => {
                        let next = rs + c.len_utf8();
                        resume = Some((rp, next));
                        pi = rp;
                        si = next;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }
}
