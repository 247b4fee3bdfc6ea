use std::collections::HashMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::eval::{eval, truth, Options};
use super::*;
use crate::broker::destination::Destination;

/// Properties by name; anything absent is NULL.
#[derive(Default)]
struct Props(HashMap<&'static str, Value<'static>>);

impl Props {
    fn with(mut self, k: &'static str, v: Value<'static>) -> Self {
        self.0.insert(k, v);
        self
    }
}

impl SelectorContext for Props {
    fn value(&self, identifier: &str) -> Value<'_> {
        self.0.get(identifier).cloned().unwrap_or(Value::Null)
    }
}

fn s(v: &'static str) -> Value<'static> {
    Value::from(v)
}

/// The standard fixture: t/f booleans, u missing, numbers, strings.
fn props() -> Props {
    Props::default()
        .with("t", Value::Bool(true))
        .with("f", Value::Bool(false))
        .with("n", Value::Long(10))
        .with("d", Value::Double(2.5))
        .with("str", s("abc"))
        .with("num_str", s("20"))
        .with("color", s("red"))
        .with("Color", s("blue"))
}

/// Three-valued result: Some(true), Some(false), or None for UNKNOWN.
fn tri(sel: &str, ctx: &dyn SelectorContext) -> Option<bool> {
    let expr = parser::parse(sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
    truth(&eval(&expr, ctx, Options::default()))
}

fn t(sel: &str) -> Option<bool> {
    tri(sel, &props())
}

fn yes(sel: &str) -> bool {
    Selector::parse(sel)
        .unwrap_or_else(|e| panic!("{sel:?}: {e}"))
        .matches(&props())
}

fn err(sel: &str) -> SelectorError {
    match Selector::parse(sel) {
        Ok(_) => panic!("{sel:?} parsed but should not"),
        Err(e) => e,
    }
}

const T: Option<bool> = Some(true);
const F: Option<bool> = Some(false);
const U: Option<bool> = None;

#[test]
fn comparison_operators() {
    for (sel, want) in [
        ("n = 10", T),
        ("n = 11", F),
        ("n <> 11", T),
        ("n <> 10", F),
        ("n < 11", T),
        ("n < 10", F),
        ("n <= 10", T),
        ("n <= 9", F),
        ("n > 9", T),
        ("n > 10", F),
        ("n >= 10", T),
        ("n >= 11", F),
        ("str = 'abc'", T),
        ("str = 'ABC'", F),
        ("str <> 'x'", T),
        ("t = TRUE", T),
        ("t <> TRUE", F),
        ("f = FALSE", T),
        ("t = f", F),
        // Java numeric promotion: long and double compare as doubles.
        ("n = 10.0", T),
        ("d > 2", T),
        ("d < 3", T),
        ("d = 2.5", T),
    ] {
        assert_eq!(t(sel), want, "{sel}");
    }
}

#[test]
fn arithmetic() {
    for sel in [
        "1 + 2 = 3",
        "5 - 7 = -2",
        "6 * 7 = 42",
        "7 / 2 = 3",
        "-7 / 2 = -3",
        "7 / 2.0 = 3.5",
        "7 % 3 = 1",
        "-7 % 3 = -1",
        "n * 2 + d = 22.5",
        "-n = -10",
        "+n = 10",
        "- -n = 10",
        "-d = -2.5",
        "1.5 + 1 = 2.5",
        // Java long arithmetic wraps.
        "9223372036854775807 + 1 = -9223372036854775808",
        "-9223372036854775808 / -1 = -9223372036854775808",
        "-9223372036854775808 % -1 = 0",
        "1 / 0.0 > 1000000",
    ] {
        assert_eq!(t(sel), T, "{sel}");
    }
    // Integer division by zero, NULL operands and non-numbers are UNKNOWN.
    for sel in [
        "1 / 0 = 0",
        "n % 0 = 0",
        "u + 1 = 1",
        "-u = 1",
        "+u = 1",
        "str + 1 = 1",
        "-str = 1",
        "+str = 1",
        "t * 2 = 2",
    ] {
        assert_eq!(t(sel), U, "{sel}");
    }
}

#[test]
fn precedence() {
    // AND binds tighter than OR.
    assert_eq!(t("t OR f AND f"), T);
    assert_eq!(t("(t OR f) AND f"), F);
    assert_eq!(t("f AND f OR t"), T);
    // NOT binds tighter than AND, looser than comparisons (SQL, not ActiveMQ).
    assert_eq!(t("NOT f AND f"), F);
    assert_eq!(t("NOT (f AND f)"), T);
    assert_eq!(t("NOT n = 11"), T);
    assert_eq!(t("NOT n = 10 OR t"), T);
    assert_eq!(t("NOT NOT t"), T);
    // Arithmetic: * / % over + -, left associative, unary minus tightest.
    for sel in [
        "1 + 2 * 3 = 7",
        "(1 + 2) * 3 = 9",
        "10 - 4 - 3 = 3",
        "12 / 2 / 3 = 2",
        "2 * 3 % 4 = 2",
        "-2 * 3 = -6",
        "2 - -1 = 3",
        "1 + 2 > 2 AND 1 < 2",
        // comparisons bind tighter than = (ActiveMQ's two levels)
        "n > 5 = TRUE",
        "1 < 2 = 3 < 4",
    ] {
        assert_eq!(t(sel), T, "{sel}");
    }
    // Comparisons chain left to right: (1 = 1) = TRUE.
    assert_eq!(t("1 = 1 = TRUE"), T);
}

#[test]
fn three_valued_logic_truth_tables() {
    // t = TRUE, f = FALSE, u = UNKNOWN (missing property).
    let vals = [("t", T), ("f", F), ("u", U)];
    let and = |a: Option<bool>, b: Option<bool>| match (a, b) {
        (F, _) | (_, F) => F,
        (T, T) => T,
        _ => U,
    };
    let or = |a: Option<bool>, b: Option<bool>| match (a, b) {
        (T, _) | (_, T) => T,
        (F, F) => F,
        _ => U,
    };
    for (a, av) in vals {
        assert_eq!(t(&format!("NOT {a}")), av.map(|b| !b), "NOT {a}");
        assert_eq!(t(&format!("NOT (NOT {a})")), av, "NOT NOT {a}");
        for (b, bv) in vals {
            assert_eq!(t(&format!("{a} AND {b}")), and(av, bv), "{a} AND {b}");
            assert_eq!(t(&format!("{a} OR {b}")), or(av, bv), "{a} OR {b}");
        }
    }
    // UNKNOWN from comparisons with NULL, and NOT of it.
    assert_eq!(t("u = 1"), U);
    assert_eq!(t("NOT u = 1"), U);
    assert_eq!(t("u <> 1"), U);
    assert_eq!(t("u = u"), U);
    assert_eq!(t("u < 1 OR n = 10"), T);
    assert_eq!(t("u < 1 AND n = 11"), F);
    assert_eq!(t("u < 1 AND n = 10"), U);
    // Only TRUE selects.
    assert!(!yes("u = 1"));
    assert!(!yes("NOT u = 1"));
    assert!(yes("u = 1 OR t"));
}

#[test]
fn type_mismatch_is_false_not_unknown() {
    // JMS 3.8.1.1: non-like types compare FALSE.
    assert_eq!(t("num_str > 10"), F);
    assert_eq!(t("num_str = 20"), F);
    assert_eq!(t("num_str <> 20"), F);
    assert_eq!(t("NOT (num_str > 10)"), T);
    assert_eq!(t("t = 1"), F);
    assert_eq!(t("t = 'true'"), F);
    assert_eq!(t("n = '10'"), F);
    // Ordering is not defined on strings or booleans.
    let p = props().with("other", s("abd"));
    assert_eq!(tri("str < other", &p), F);
    assert_eq!(tri("str >= other", &p), F);
    assert_eq!(tri("t > f", &p), F);
    // A non-boolean in a boolean position is FALSE (ActiveMQ's boolean cast).
    assert_eq!(t("str"), F);
    assert_eq!(t("NOT str"), T);
    assert_eq!(t("n AND t"), F);
}

#[test]
fn convert_string_expressions_prefix() {
    let p = props().with("price", s("20")).with("flag", s("TRUE"));
    let m = |sel: &str| Selector::parse(sel).unwrap().matches(&p);
    assert!(!m("price > 10"));
    assert!(m("convert_string_expressions:price > 10"));
    assert!(m("convert_string_expressions:10 < price"));
    assert!(m("convert_string_expressions:price BETWEEN 15 AND 25"));
    assert!(m("convert_string_expressions:price = 20.0"));
    assert!(m("convert_string_expressions:flag = TRUE"));
    assert!(!m("convert_string_expressions:str > 10"));
    assert!(m("convert_string_expressions:NOT (str > 10)"));
    // Columns still point into the text the client sent.
    let e = err("convert_string_expressions:a = = 1");
    assert_eq!(e.column(), Some(32), "{e}");
}

#[test]
fn between() {
    for (sel, want) in [
        ("n BETWEEN 5 AND 15", T),
        ("n BETWEEN 10 AND 10", T),
        ("n BETWEEN 11 AND 20", F),
        ("n BETWEEN 1 AND 9.99", F),
        ("d BETWEEN 2 AND 3", T),
        ("n NOT BETWEEN 11 AND 20", T),
        ("n NOT BETWEEN 5 AND 15", F),
        ("n NOT BETWEEN 10 AND 10", F),
        ("n BETWEEN 2 * 4 AND n + 1", T),
        ("n BETWEEN -1 AND -(-10)", T),
        // BETWEEN's AND is its own; the second one is logical.
        ("n BETWEEN 5 AND 15 AND t", T),
        ("n BETWEEN 5 AND 15 AND f", F),
        ("u BETWEEN 1 AND 2", U),
        ("u NOT BETWEEN 1 AND 2", U),
        ("n BETWEEN u AND 20", U),
        // ... but a definite FALSE side wins: 10 <= 5 is FALSE.
        ("n BETWEEN u AND 5", F),
        ("str BETWEEN 1 AND 2", F),
        ("str NOT BETWEEN 1 AND 2", F),
    ] {
        assert_eq!(t(sel), want, "{sel}");
    }
}

#[test]
fn in_and_not_in() {
    for (sel, want) in [
        ("color IN ('red', 'green')", T),
        ("color IN ('green')", F),
        ("color NOT IN ('green', 'blue')", T),
        ("color NOT IN ('red')", F),
        ("color IN ('RED')", F),
        // NULL identifier: UNKNOWN either way.
        ("u IN ('a', 'b')", U),
        ("u NOT IN ('a', 'b')", U),
        ("NOT u IN ('a')", U),
        // Non-string values are non-like types: FALSE either way.
        ("n IN ('10')", F),
        ("n NOT IN ('10')", F),
        ("color in ('red')", T),
    ] {
        assert_eq!(t(sel), want, "{sel}");
    }
    let p = props().with("q", s("it's"));
    assert_eq!(tri("q IN ('x', 'it''s')", &p), T);
}

#[test]
fn like() {
    let m = |value: &str, pattern: &str| {
        let v = value.to_owned();
        let p = Props(HashMap::from([("v", Value::Str(v.into()))]));
        tri(&format!("v LIKE {pattern}"), &p).unwrap()
    };
    assert!(m("abc", "'abc'"));
    assert!(!m("abcd", "'abc'"));
    assert!(!m("ab", "'abc'"));
    assert!(m("", "''"));
    assert!(!m("a", "''"));
    // %
    assert!(m("", "'%'"));
    assert!(m("anything", "'%'"));
    assert!(m("abc", "'a%'"));
    assert!(m("abc", "'%c'"));
    assert!(m("abc", "'%b%'"));
    assert!(m("abc", "'a%%c'"));
    assert!(m("aXbXc", "'%a%b%c%'"));
    assert!(m("abcbcd", "'a%bcd'"));
    assert!(!m("abcbce", "'a%bcd'"));
    assert!(!m("acb", "'%b%c'"));
    // _
    assert!(m("abc", "'a_c'"));
    assert!(!m("ac", "'a_c'"));
    assert!(m("abc", "'___'"));
    assert!(!m("abc", "'__'"));
    assert!(m("aéc", "'a_c'"), "one character, not one byte");
    assert!(m("a\nc", "'a_c'"));
    assert!(m("a\nb\nc", "'a%c'"));
    assert!(m("abcd", "'_%_'"));
    assert!(!m("a", "'_%_'"));
    // Regex metacharacters are ordinary.
    for special in [
        ".", "*", "+", "?", "[a]", "^", "$", "\\", "(x)", "{2}", "|", "\\d",
    ] {
        let quoted = format!("'{special}'");
        assert!(m(special, &quoted), "{special}");
    }
    assert!(!m("abc", "'.*'"));
    assert!(!m("a", "'[a]'"));
    assert!(m("a.c", "'a.c'"));
    assert!(!m("abc", "'a.c'"));
    assert!(m("x^y$", "'%^y$'"));
    assert!(m("it's", "'it''s'"));
    // ESCAPE
    assert!(m("100%", "'100!%' ESCAPE '!'"));
    assert!(!m("1000", "'100!%' ESCAPE '!'"));
    assert!(m("a_b", "'a\\_b' ESCAPE '\\'"));
    assert!(!m("axb", "'a\\_b' ESCAPE '\\'"));
    assert!(m("a!b", "'a!!b' ESCAPE '!'"));
    assert!(m("50% off", "'%!%%' ESCAPE '!'"));
    // The escape character before anything else, or at the end, is literal.
    assert!(m("!a", "'!a' ESCAPE '!'"));
    assert!(m("a!", "'a!' ESCAPE '!'"));
    // A regex-special escape character is fine too.
    assert!(m("a%", "'a.%' ESCAPE '.'"));
    assert!(m("a%", "'a%%' ESCAPE '%'"));
    // NOT LIKE, NULL, non-strings.
    assert_eq!(t("str NOT LIKE 'a%'"), F);
    assert_eq!(t("str NOT LIKE 'x%'"), T);
    assert_eq!(t("u LIKE 'a%'"), U);
    assert_eq!(t("u NOT LIKE 'a%'"), U);
    assert_eq!(t("n LIKE '1%'"), F);
    assert_eq!(t("n NOT LIKE '1%'"), F);
}

#[test]
fn like_backtracking_is_not_exponential() {
    let long = "a".repeat(10_000);
    let pattern = LikePattern::compile(&"%a".repeat(50), None);
    assert!(pattern.matches(&long));
    let pattern = LikePattern::compile(&format!("{}b", "%a".repeat(50)), None);
    assert!(!pattern.matches(&long));
}

use super::eval::LikePattern;

#[test]
fn is_null() {
    for (sel, want) in [
        ("u IS NULL", T),
        ("u IS NOT NULL", F),
        ("n IS NULL", F),
        ("n IS NOT NULL", T),
        ("NOT u IS NULL", F),
        ("(n + u) IS NULL", T),
        ("(u = 1) IS NULL", T),
        ("n = 10 IS NOT NULL", T),
    ] {
        assert_eq!(t(sel), want, "{sel}");
    }
}

#[test]
fn numeric_literals() {
    for sel in [
        "57 = 57",
        "57L = 57",
        "57l = 57",
        "0x1F = 31",
        "0X1fL = 31",
        "0xff = 255",
        "017 = 15",
        "00 = 0",
        "0 = 0",
        "0L = 0",
        "1.5 = 3 / 2.0",
        "1e3 = 1000",
        "1E+3 = 1000",
        "1e-3 = 0.001",
        "7E3 = 7000",
        "-57.9E2 = -5790",
        ".5 = 0.5",
        "5. = 5",
        "5.e1 = 50",
        "1.5D = 1.5",
        "2d = 2",
        "2F = 2",
        "1.5f = 1.5",
        "+62 = 62",
        "-957 = 0 - 957",
        "9223372036854775807 > 0",
        "-9223372036854775808 < 0",
        "0x7fffffffffffffff = 9223372036854775807",
        "1e400 > 1e300",
    ] {
        assert_eq!(t(sel), T, "{sel}");
    }
    // A Java float literal is rounded to float precision, as in Java.
    assert_eq!(t("0.1F = 0.1"), F);
    assert_eq!(t("0.5F = 0.5"), T);

    for (bad, col) in [
        ("n = 9223372036854775808", 5),
        ("n = 99999999999999999999", 5),
        ("n = 0x10000000000000000", 5),
        ("n = 08", 5),
        ("n = 0x", 5),
        ("n = 0xg", 5),
        ("n = 1e", 5),
        ("n = 1e+", 5),
        ("n = 12abc", 5),
        ("n = 1.2.3", 5),
        ("n = 1LL", 5),
    ] {
        let e = err(bad);
        assert!(
            matches!(e, SelectorError::InvalidNumber { .. }),
            "{bad}: {e}"
        );
        assert_eq!(e.column(), Some(col), "{bad}: {e}");
    }
}

#[test]
fn string_literals() {
    let p = props()
        .with("q", s("it's"))
        .with("e", s(""))
        .with("qq", s("''"));
    assert_eq!(tri("q = 'it''s'", &p), T);
    assert_eq!(tri("e = ''", &p), T);
    assert_eq!(tri("qq = ''''''", &p), T);
    assert_eq!(tri("str = 'abc '", &p), F);
    let p = props().with("x", s("a\nb -- not a comment"));
    assert_eq!(tri("x = 'a\nb -- not a comment'", &p), T);
    let p = props().with("x", s("日本"));
    assert_eq!(tri("x = '日本'", &p), T);
    assert!(matches!(
        err("str = 'abc"),
        SelectorError::UnterminatedString { column: 7 }
    ));
    assert!(matches!(
        err("str = 'it''s"),
        SelectorError::UnterminatedString { column: 7 }
    ));
}

#[test]
fn keywords_are_case_insensitive_identifiers_are_not() {
    for sel in [
        "n between 5 and 15",
        "n BeTwEeN 5 aNd 15",
        "n not between 11 and 20",
        "color in ('red') or f",
        "color Not In ('blue')",
        "str like 'a%' escape '!'",
        "str NoT lIkE 'x%'",
        "u is null",
        "n Is NoT nUlL",
        "t = true",
        "f = False",
        "not f",
    ] {
        assert!(yes(sel), "{sel}");
    }
    assert_eq!(t("color = 'red'"), T);
    assert_eq!(t("Color = 'blue'"), T);
    assert_eq!(t("COLOR IS NULL"), T);
}

#[test]
fn identifiers() {
    let p = Props::default()
        .with("_x", Value::Long(1))
        .with("$y", Value::Long(2))
        .with("a1_$", Value::Long(3))
        .with("JMSXGroupID", s("g"))
        .with("größe", Value::Long(4))
        .with("ANDx", Value::Long(5));
    for sel in [
        "_x = 1",
        "$y = 2",
        "a1_$ = 3",
        "JMSXGroupID = 'g'",
        "größe = 4",
        "ANDx = 5",
    ] {
        assert_eq!(tri(sel, &p), T, "{sel}");
    }
}

#[test]
fn comments_and_whitespace() {
    assert!(yes("n = 10 -- trailing comment"));
    assert!(yes("/* leading */ n = 10"));
    assert!(yes("n /* inside */ = /**/ 10"));
    assert!(yes("n = 10 -- first line\n AND t"));
    assert!(yes("\t\r\n n\u{c}=\n10 "));
    assert!(matches!(
        err("n = 10 /* open"),
        SelectorError::UnterminatedComment { column: 8 }
    ));
}

#[test]
fn empty_selector_selects_everything() {
    for text in ["", "   ", "\n\t"] {
        let sel = Selector::parse(text).unwrap();
        assert!(sel.selects_all());
        assert!(sel.matches(&Props::default()));
    }
    assert!(!Selector::parse("t").unwrap().selects_all());
    assert!(matches!(
        err("-- only a comment"),
        SelectorError::UnexpectedEnd { .. }
    ));
}

#[test]
fn literal_selectors() {
    assert!(yes("TRUE"));
    assert!(!yes("FALSE"));
    assert!(yes("t"));
    assert!(!yes("u"));
    assert!(yes("(TRUE)"));
}

#[test]
fn error_positions() {
    let cases: &[(&str, usize, &str)] = &[
        // The brief's own example: a second AND where an operand belongs.
        (
            "color = 'x' AND AND n = 1",
            17,
            "unexpected token 'AND' at column 17",
        ),
        ("n = ", 5, "unexpected end of selector at column 5"),
        ("n == 1", 4, "unexpected token '='"),
        ("n # 1", 3, "unexpected character '#'"),
        ("n != 1", 3, "unexpected character '!'"),
        ("(n = 1", 7, "unexpected end"),
        ("n = 1)", 6, "unexpected token ')'"),
        ("n = 1 n = 2", 7, "unexpected token 'n'"),
        ("n IN (1, 2)", 7, "unexpected token '1'"),
        ("n IN 'a'", 6, "expected '(' after IN"),
        ("n IN ('a' 'b')", 11, "expected ',' or ')'"),
        ("n IN ()", 7, "unexpected token ')'"),
        ("n LIKE 5", 8, "a string literal pattern"),
        (
            "n LIKE 'a' ESCAPE 'ab'",
            19,
            "ESCAPE must be a single character",
        ),
        (
            "n LIKE 'a' ESCAPE ''",
            19,
            "ESCAPE must be a single character",
        ),
        ("n BETWEEN 1 OR 2", 13, "AND in BETWEEN"),
        ("n IS 5", 6, "expected NULL"),
        ("n NOT = 5", 3, "unexpected token 'NOT'"),
        ("n = NOT t", 5, "parenthesize NOT"),
        // Static type errors point at the offending operand.
        ("n = NULL", 5, "NULL cannot be compared"),
        ("NULL <> n", 1, "NULL cannot be compared"),
        ("str < 'abc'", 7, "expected a numeric expression"),
        ("TRUE > f", 1, "expected a numeric expression"),
        ("(n = 1) < 2", 1, "expected a numeric expression"),
        ("'a' + 1 = 2", 1, "expected a numeric expression"),
        ("-'a' = 1", 2, "expected a numeric expression"),
        (
            "str BETWEEN 'a' AND 'b'",
            13,
            "expected a numeric expression",
        ),
        ("n + 1", 1, "expected a boolean expression"),
        ("'abc'", 1, "expected a boolean expression"),
        ("t AND 1", 7, "expected a boolean expression"),
        ("NOT 5", 5, "expected a boolean expression"),
        ("(n + 1) IN ('a')", 1, "IN needs an identifier"),
        // Columns count characters, not bytes.
        ("größe = = 1", 9, "unexpected token '='"),
        ("x = 'ü' AND", 12, "unexpected end"),
    ];
    for &(sel, col, text) in cases {
        let e = err(sel);
        let msg = e.to_string();
        assert_eq!(e.column(), Some(col), "{sel:?}: {msg}");
        assert!(msg.contains(text), "{sel:?}: {msg:?} lacks {text:?}");
        assert!(msg.contains(&format!("column {col}")), "{sel:?}: {msg}");
    }
}

#[test]
fn long_tokens_are_cut_short_in_errors() {
    let sel = format!("n = 1 '{}'", "x".repeat(1000));
    let msg = err(&sel).to_string();
    assert!(msg.len() < 200, "{msg}");
    assert!(msg.contains("at column 7"), "{msg}");
}

#[test]
fn nesting_limits() {
    let parens = |n: usize| format!("{}t{}", "(".repeat(n), ")".repeat(n));
    assert!(yes(&parens(MAX_DEPTH - 1)));
    assert!(matches!(
        err(&parens(MAX_DEPTH + 1)),
        SelectorError::TooDeep { .. }
    ));
    // `--` would start a comment, hence the spaces in the unary-minus chain below.
    // Far past the limit: a typed error, not a stack overflow.
    assert!(matches!(
        err(&parens(30_000)),
        SelectorError::TooDeep { .. }
    ));
    assert!(matches!(
        err(&format!("{}t", "NOT ".repeat(10_000))),
        SelectorError::TooDeep { .. }
    ));
    assert!(matches!(
        err(&format!("{}1 = 1", "- ".repeat(20_000))),
        SelectorError::TooDeep { .. }
    ));
    // Left-associative chains build tall trees without parser recursion.
    assert!(matches!(
        err(&format!("n{} = 1", " + 1".repeat(5_000))),
        SelectorError::TooDeep { .. }
    ));
    assert!(yes(&format!("n{} = 60", " + 1".repeat(50))));
    // AND/OR chains are flat: thousands of alternatives are fine.
    let ors: Vec<String> = (0..5_000).map(|i| format!("n = {i}")).collect();
    assert!(yes(&ors.join(" OR ")));
    let ands: Vec<String> = (0..5_000).map(|_| "t".to_owned()).collect();
    assert!(yes(&ands.join(" AND ")));
    // ... also through parentheses on the left.
    assert!(yes(&format!("({}) OR f", ors.join(" OR "))));
}

#[test]
fn length_limit() {
    let ok = format!("n = 10 OR str = '{}'", "x".repeat(MAX_SELECTOR_LEN - 100));
    assert!(yes(&ok));
    let long = format!("str = '{}'", "x".repeat(MAX_SELECTOR_LEN));
    assert!(matches!(
        err(&long),
        SelectorError::TooLong {
            max: MAX_SELECTOR_LEN,
            ..
        }
    ));
}

#[test]
fn selector_keeps_its_text() {
    let sel: Selector = "n = 10".parse().unwrap();
    assert_eq!(sel.as_str(), "n = 10");
    assert_eq!(sel.to_string(), "n = 10");
}

fn message() -> Message {
    Message {
        id: "ID:broker-1:1:1".into(),
        destination: Destination::queue("orders"),
        persistent: true,
        priority: 7,
        timestamp_ms: 1_700_000_000_000,
        expires_ms: 0,
        reply_to: Some("/queue/replies".into()),
        headers: vec![
            ("correlation-id".into(), "c-42".into()),
            ("type".into(), "order".into()),
            ("region".into(), "EU".into()),
            ("price".into(), "20".into()),
            ("region".into(), "US".into()),
        ],
        body: Bytes::from_static(b"{}"),
        body_type: Default::default(),
        properties: Vec::new(),
    }
}

#[test]
fn message_headers_and_properties() {
    let msg = message();
    let m = |sel: &str| {
        Selector::parse(sel)
            .unwrap_or_else(|e| panic!("{sel}: {e}"))
            .matches(&msg)
    };
    assert!(m("JMSMessageID = 'ID:broker-1:1:1'"));
    assert!(m("JMSPriority = 7"));
    assert!(m("JMSPriority > 4"));
    assert!(m("JMSTimestamp = 1700000000000"));
    assert!(m("JMSExpiration = 0"));
    assert!(m("JMSDeliveryMode = 'PERSISTENT'"));
    assert!(m("JMSCorrelationID = 'c-42'"));
    assert!(m("JMSType = 'order'"));
    assert!(m("JMSReplyTo = '/queue/replies'"));
    // The first of repeated headers wins.
    assert!(m("region = 'EU'"));
    // STOMP header values are strings: strict JMS typing.
    assert!(m("price = '20'"));
    assert!(!m("price > 10"));
    assert!(m("convert_string_expressions:price > 10"));
    assert!(m("missing IS NULL"));
    assert!(m(
        "JMSPriority BETWEEN 5 AND 9 AND JMSType IN ('order', 'refund')"
    ));

    let mut msg = message();
    msg.persistent = false;
    msg.reply_to = None;
    msg.headers.clear();
    let m = |sel: &str| Selector::parse(sel).unwrap().matches(&msg);
    assert!(m("JMSDeliveryMode = 'NON_PERSISTENT'"));
    assert!(m("JMSCorrelationID IS NULL"));
    assert!(m("JMSType IS NULL AND JMSReplyTo IS NULL"));
    assert!(!m("JMSType <> 'order'"));
}

/// A selector-shaped alphabet reaches deeper into the parser than arbitrary text.
fn selectorish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "a",
        "b",
        "JMSPriority",
        "t",
        "'x'",
        "'it''s'",
        "''",
        "'",
        "1",
        "0x1F",
        "017",
        "08",
        "1.5",
        "1e3",
        ".5",
        "1L",
        "2F",
        "9223372036854775808",
        "(",
        ")",
        ",",
        "=",
        "<>",
        "<",
        "<=",
        ">",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "AND",
        "or",
        "NOT",
        "BETWEEN",
        "LIKE",
        "ESCAPE",
        "IN",
        "IS",
        "NULL",
        "TRUE",
        "false",
        "--",
        "/*",
        "*/",
        "\n",
        " ",
        "é",
        "!",
        "_",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.join(" "))
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        if let Ok(sel) = Selector::parse(&text) {
            sel.matches(&props());
        }
    }

    #[test]
    fn selector_like_text_never_panics(text in selectorish()) {
        match Selector::parse(&text) {
            Ok(sel) => {
                sel.matches(&props());
                sel.matches(&message());
            }
            // Every positioned error points inside the text or just past its end.
            Err(e) => if let Some(col) = e.column() {
                prop_assert!(col >= 1 && col <= text.chars().count() + 1, "{e}");
            },
        }
    }

    #[test]
    fn like_agrees_with_a_naive_matcher(
        value in "[ab%_]{0,8}",
        pattern in "[ab%_]{0,6}",
    ) {
        prop_assert_eq!(
            LikePattern::compile(&pattern, None).matches(&value),
            naive_like(&pattern.chars().collect::<Vec<_>>(), &value.chars().collect::<Vec<_>>())
        );
    }
}

/// Exponential but obviously right.
fn naive_like(p: &[char], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some(('%', rest)) => (0..=s.len()).any(|i| naive_like(rest, &s[i..])),
        Some(('_', rest)) => !s.is_empty() && naive_like(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && naive_like(rest, &s[1..]),
    }
}
