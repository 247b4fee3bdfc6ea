//! Precedence-climbing parser from tokens to [`Expr`], with the static checks
//! ActiveMQ performs at subscribe time (so a selector it rejects is rejected here too).
//!
//! Precedence climbing rather than one function per grammar level: each level of
//! parentheses then costs two stack frames, not nine, which keeps the worst case
//! allowed by [`MAX_DEPTH`] small.

use super::eval::LikePattern;
use super::lexer::{column, tokenize, Keyword, Tok, Token};
use super::{SelectorError, MAX_DEPTH};

/// The parsed selector. Boolean-valued nodes evaluate to `Bool` or `Null` (UNKNOWN).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Expr {
    Bool(bool),
    Long(i64),
    Double(f64),
    Str(String),
    Null,
    Ident(String),
    Neg(Box<Expr>),
    /// Unary plus: kept (not dropped) so that `+s` on a string property is UNKNOWN,
    /// like any other arithmetic on a non-number.
    Pos(Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// n-ary so that long `a=1 OR a=2 OR ...` chains stay shallow.
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Between {
        negated: bool,
        value: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
    },
    Like {
        negated: bool,
        value: Box<Expr>,
        pattern: LikePattern,
    },
    In {
        negated: bool,
        ident: String,
        list: Vec<String>,
    },
    IsNull {
        negated: bool,
        value: Box<Expr>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// What the parser knows about an expression's type before any message is seen.
/// Identifiers are `Any`: their type depends on the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    Num,
    Str,
    Null,
    Any,
}

struct Node {
    expr: Expr,
    kind: Kind,
    /// Byte offset where the expression starts, for error messages.
    start: usize,
    /// Height of the expression tree; bounded by [`MAX_DEPTH`] so that evaluating
    /// and dropping the tree never recurses deeply.
    depth: usize,
}

// Binding powers, loosest first.
const BP_OR: u8 = 1;
const BP_AND: u8 = 2;
const BP_NOT: u8 = 3;
const BP_EQUALITY: u8 = 4;
const BP_COMPARISON: u8 = 5;
const BP_ADDITIVE: u8 = 6;
const BP_MULTIPLICATIVE: u8 = 7;
const BP_UNARY: u8 = 8;

pub(super) fn parse(text: &str) -> Result<Expr, SelectorError> {
    let tokens = tokenize(text)?;
    let mut p = Parser {
        text,
        tokens,
        pos: 0,
        nesting: 0,
    };
    let root = p.expr(0)?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("an operator or the end of the selector"));
    }
    p.check_boolean(&root)?;
    Ok(root.expr)
}

struct Parser<'t> {
    text: &'t str,
    tokens: Vec<Token>,
    pos: usize,
    /// Parser recursion through parentheses and prefix operators.
    nesting: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos].tok
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        let i = (self.pos + ahead).min(self.tokens.len() - 1);
        &self.tokens[i].tok
    }

    fn start(&self) -> usize {
        self.tokens[self.pos].start
    }

    fn bump(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn col(&self, offset: usize) -> usize {
        column(self.text, offset)
    }

    fn unexpected(&self, expected: &'static str) -> SelectorError {
        let t = &self.tokens[self.pos];
        let column = self.col(t.start);
        if t.tok == Tok::Eof {
            return SelectorError::UnexpectedEnd { column, expected };
        }
        // Long string literals are cut short; the column already says where they are.
        let mut found: String = self.text[t.start..t.end].chars().take(40).collect();
        if found.len() < t.end - t.start {
            found.push('…');
        }
        SelectorError::UnexpectedToken {
            found,
            column,
            expected,
        }
    }

    fn expect(&mut self, tok: Tok, expected: &'static str) -> Result<(), SelectorError> {
        if *self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn enter(&mut self) -> Result<(), SelectorError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(SelectorError::TooDeep {
                column: self.col(self.start()),
                max: MAX_DEPTH,
            });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    /// Builds a node over `children`, enforcing the tree-height limit.
    fn node(
        &self,
        expr: Expr,
        kind: Kind,
        start: usize,
        op_at: usize,
        children: &[usize],
    ) -> Result<Node, SelectorError> {
        let depth = 1 + children.iter().copied().max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(SelectorError::TooDeep {
                column: self.col(op_at),
                max: MAX_DEPTH,
            });
        }
        Ok(Node {
            expr,
            kind,
            start,
            depth,
        })
    }

    fn type_error(&self, node: &Node, what: &'static str) -> SelectorError {
        SelectorError::Type {
            column: self.col(node.start),
            what,
        }
    }

    fn check_boolean(&self, n: &Node) -> Result<(), SelectorError> {
        match n.kind {
            Kind::Bool | Kind::Any => Ok(()),
            _ => Err(self.type_error(n, "expected a boolean expression")),
        }
    }

    fn check_numeric(&self, n: &Node) -> Result<(), SelectorError> {
        match n.kind {
            Kind::Num | Kind::Any => Ok(()),
            _ => Err(self.type_error(n, "expected a numeric expression")),
        }
    }

    fn expr(&mut self, min_bp: u8) -> Result<Node, SelectorError> {
        let mut lhs = self.prefix(min_bp)?;
        loop {
            let op_at = self.start();
            let bp = match self.peek() {
                Tok::Kw(Keyword::Or) => BP_OR,
                Tok::Kw(Keyword::And) => BP_AND,
                Tok::Eq | Tok::Ne | Tok::Kw(Keyword::Is) => BP_EQUALITY,
                Tok::Lt
                | Tok::Le
                | Tok::Gt
                | Tok::Ge
                | Tok::Kw(Keyword::Like | Keyword::Between | Keyword::In) => BP_COMPARISON,
                Tok::Kw(Keyword::Not)
                    if matches!(
                        self.peek_at(1),
                        Tok::Kw(Keyword::Like | Keyword::Between | Keyword::In)
                    ) =>
                {
                    BP_COMPARISON
                }
                Tok::Plus | Tok::Minus => BP_ADDITIVE,
                Tok::Star | Tok::Slash | Tok::Percent => BP_MULTIPLICATIVE,
                _ => break,
            };
            if bp < min_bp {
                break;
            }
            let op = self.bump().tok;
            lhs = match op {
                Tok::Kw(Keyword::Or) | Tok::Kw(Keyword::And) => {
                    let is_or = op == Tok::Kw(Keyword::Or);
                    self.check_boolean(&lhs)?;
                    let rhs = self.expr(bp + 1)?;
                    self.check_boolean(&rhs)?;
                    let start = lhs.start;
                    // Extending a chain adds a child, not a level; a new chain is a
                    // level above both operands.
                    let (expr, depth) = match (lhs.expr, is_or) {
                        (Expr::Or(mut v), true) | (Expr::And(mut v), false) => {
                            v.push(rhs.expr);
                            let e = if is_or { Expr::Or(v) } else { Expr::And(v) };
                            (e, lhs.depth.max(rhs.depth + 1))
                        }
                        (l, true) => (Expr::Or(vec![l, rhs.expr]), 1 + lhs.depth.max(rhs.depth)),
                        (l, false) => (Expr::And(vec![l, rhs.expr]), 1 + lhs.depth.max(rhs.depth)),
                    };
                    self.node(expr, Kind::Bool, start, op_at, &[depth - 1])?
                }
                Tok::Eq | Tok::Ne => {
                    let rhs = self.expr(bp + 1)?;
                    for n in [&lhs, &rhs] {
                        if n.kind == Kind::Null {
                            return Err(self.type_error(n, "NULL cannot be compared; use IS NULL"));
                        }
                    }
                    let cmp = if op == Tok::Eq { CmpOp::Eq } else { CmpOp::Ne };
                    self.binary(lhs, rhs, op_at, |l, r| Expr::Cmp(cmp, l, r), Kind::Bool)?
                }
                Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge => {
                    let rhs = self.expr(bp + 1)?;
                    // JMS restricts strings and booleans to = and <>.
                    self.check_numeric(&lhs)?;
                    self.check_numeric(&rhs)?;
                    let cmp = match op {
                        Tok::Lt => CmpOp::Lt,
                        Tok::Le => CmpOp::Le,
                        Tok::Gt => CmpOp::Gt,
                        _ => CmpOp::Ge,
                    };
                    self.binary(lhs, rhs, op_at, |l, r| Expr::Cmp(cmp, l, r), Kind::Bool)?
                }
                Tok::Plus | Tok::Minus | Tok::Star | Tok::Slash | Tok::Percent => {
                    let rhs = self.expr(bp + 1)?;
                    self.check_numeric(&lhs)?;
                    self.check_numeric(&rhs)?;
                    let a = match op {
                        Tok::Plus => ArithOp::Add,
                        Tok::Minus => ArithOp::Sub,
                        Tok::Star => ArithOp::Mul,
                        Tok::Slash => ArithOp::Div,
                        _ => ArithOp::Mod,
                    };
                    self.binary(lhs, rhs, op_at, |l, r| Expr::Arith(a, l, r), Kind::Num)?
                }
                Tok::Kw(Keyword::Is) => {
                    let negated = *self.peek() == Tok::Kw(Keyword::Not);
                    if negated {
                        self.bump();
                    }
                    self.expect(Tok::Kw(Keyword::Null), "NULL")?;
                    let expr = Expr::IsNull {
                        negated,
                        value: Box::new(lhs.expr),
                    };
                    self.node(expr, Kind::Bool, lhs.start, op_at, &[lhs.depth])?
                }
                Tok::Kw(kw) => {
                    // LIKE, BETWEEN or IN, possibly after NOT.
                    let (negated, kw) = if kw == Keyword::Not {
                        match self.bump().tok {
                            Tok::Kw(k) => (true, k),
                            _ => unreachable!("guarded by the lookahead above"),
                        }
                    } else {
                        (false, kw)
                    };
                    match kw {
                        Keyword::Like => self.like(lhs, negated, op_at)?,
                        Keyword::Between => self.between(lhs, negated, op_at)?,
                        _ => self.in_list(lhs, negated, op_at)?,
                    }
                }
                _ => unreachable!("only operators get past the binding-power match"),
            };
        }
        Ok(lhs)
    }

    fn binary(
        &self,
        lhs: Node,
        rhs: Node,
        op_at: usize,
        make: impl FnOnce(Box<Expr>, Box<Expr>) -> Expr,
        kind: Kind,
    ) -> Result<Node, SelectorError> {
        let depths = [lhs.depth, rhs.depth];
        let expr = make(Box::new(lhs.expr), Box::new(rhs.expr));
        self.node(expr, kind, lhs.start, op_at, &depths)
    }

    fn string_literal(&mut self, expected: &'static str) -> Result<String, SelectorError> {
        match self.peek() {
            Tok::Str(_) => match self.bump().tok {
                Tok::Str(s) => Ok(s),
                _ => unreachable!(),
            },
            _ => Err(self.unexpected(expected)),
        }
    }

    fn like(&mut self, lhs: Node, negated: bool, op_at: usize) -> Result<Node, SelectorError> {
        let pattern = self.string_literal("a string literal pattern after LIKE")?;
        let mut escape = None;
        if *self.peek() == Tok::Kw(Keyword::Escape) {
            self.bump();
            let at = self.start();
            let e = self.string_literal("a string literal after ESCAPE")?;
            let mut chars = e.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => escape = Some(c),
                _ => {
                    return Err(SelectorError::BadEscape {
                        column: self.col(at),
                    })
                }
            }
        }
        let expr = Expr::Like {
            negated,
            value: Box::new(lhs.expr),
            pattern: LikePattern::compile(&pattern, escape),
        };
        self.node(expr, Kind::Bool, lhs.start, op_at, &[lhs.depth])
    }

    fn between(&mut self, lhs: Node, negated: bool, op_at: usize) -> Result<Node, SelectorError> {
        // Operands bind tighter than AND, so the AND here is BETWEEN's own.
        let low = self.expr(BP_ADDITIVE)?;
        self.expect(Tok::Kw(Keyword::And), "AND in BETWEEN ... AND ...")?;
        let high = self.expr(BP_ADDITIVE)?;
        for n in [&lhs, &low, &high] {
            self.check_numeric(n)?;
        }
        let depths = [lhs.depth, low.depth, high.depth];
        let expr = Expr::Between {
            negated,
            value: Box::new(lhs.expr),
            low: Box::new(low.expr),
            high: Box::new(high.expr),
        };
        self.node(expr, Kind::Bool, lhs.start, op_at, &depths)
    }

    fn in_list(&mut self, lhs: Node, negated: bool, op_at: usize) -> Result<Node, SelectorError> {
        // JMS (and ActiveMQ) only allow `identifier [NOT] IN (string, ...)`.
        let Expr::Ident(ident) = lhs.expr else {
            return Err(self.type_error(&lhs, "IN needs an identifier on its left"));
        };
        self.expect(Tok::LParen, "'(' after IN")?;
        let mut list = vec![self.string_literal("a string literal in the IN list")?];
        while *self.peek() == Tok::Comma {
            self.bump();
            list.push(self.string_literal("a string literal in the IN list")?);
        }
        self.expect(Tok::RParen, "',' or ')' in the IN list")?;
        let expr = Expr::In {
            negated,
            ident,
            list,
        };
        self.node(expr, Kind::Bool, lhs.start, op_at, &[lhs.depth])
    }

    fn prefix(&mut self, min_bp: u8) -> Result<Node, SelectorError> {
        let start = self.start();
        let node = match self.peek().clone() {
            Tok::Kw(Keyword::Not) => {
                // SQL's NOT binds looser than comparisons (`NOT a = 1` is
                // `NOT (a = 1)`), so it cannot appear as an operand of one:
                // `a = NOT b` needs parentheses.
                if min_bp > BP_NOT {
                    return Err(self.unexpected("an operand (parenthesize NOT here)"));
                }
                self.bump();
                self.enter()?;
                let operand = self.expr(BP_NOT)?;
                self.leave();
                self.check_boolean(&operand)?;
                let expr = Expr::Not(Box::new(operand.expr));
                self.node(expr, Kind::Bool, start, start, &[operand.depth])?
            }
            Tok::Minus | Tok::Plus => {
                let minus = self.bump().tok == Tok::Minus;
                // Fold the sign into an integer literal here, the only place the
                // magnitude 2^63 is representable (as i64::MIN).
                if let Tok::Int(v) = *self.peek() {
                    if minus && v == 1 << 63 {
                        self.bump();
                        return Ok(Node {
                            expr: Expr::Long(i64::MIN),
                            kind: Kind::Num,
                            start,
                            depth: 1,
                        });
                    }
                }
                self.enter()?;
                let operand = self.expr(BP_UNARY)?;
                self.leave();
                self.check_numeric(&operand)?;
                let expr = match (minus, operand.expr) {
                    (true, Expr::Long(v)) => Expr::Long(v.wrapping_neg()),
                    (true, Expr::Double(v)) => Expr::Double(-v),
                    (false, e @ (Expr::Long(_) | Expr::Double(_))) => e,
                    (true, e) => Expr::Neg(Box::new(e)),
                    (false, e) => Expr::Pos(Box::new(e)),
                };
                self.node(expr, Kind::Num, start, start, &[operand.depth])?
            }
            Tok::LParen => {
                self.bump();
                self.enter()?;
                let mut inner = self.expr(0)?;
                self.leave();
                self.expect(Tok::RParen, "')'")?;
                inner.start = start;
                inner
            }
            Tok::Int(v) => {
                if v > i64::MAX as u64 {
                    let t = &self.tokens[self.pos];
                    return Err(SelectorError::InvalidNumber {
                        text: self.text[t.start..t.end].to_owned(),
                        column: self.col(start),
                        reason: "out of range",
                    });
                }
                self.bump();
                self.leaf(Expr::Long(v as i64), Kind::Num, start)
            }
            Tok::Float(v) => {
                self.bump();
                self.leaf(Expr::Double(v), Kind::Num, start)
            }
            Tok::Str(s) => {
                self.bump();
                self.leaf(Expr::Str(s), Kind::Str, start)
            }
            Tok::Kw(Keyword::True) => {
                self.bump();
                self.leaf(Expr::Bool(true), Kind::Bool, start)
            }
            Tok::Kw(Keyword::False) => {
                self.bump();
                self.leaf(Expr::Bool(false), Kind::Bool, start)
            }
            Tok::Kw(Keyword::Null) => {
                self.bump();
                self.leaf(Expr::Null, Kind::Null, start)
            }
            Tok::Ident(name) => {
                self.bump();
                self.leaf(Expr::Ident(name), Kind::Any, start)
            }
            _ => return Err(self.unexpected("an operand")),
        };
        Ok(node)
    }

    fn leaf(&self, expr: Expr, kind: Kind, start: usize) -> Node {
        Node {
            expr,
            kind,
            start,
            depth: 1,
        }
    }
}
