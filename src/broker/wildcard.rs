//! ActiveMQ's destination wildcards: names are paths of segments separated by `.`;
//! in a pattern a segment `*` matches exactly one segment and a segment `>` matches
//! every remaining segment, none included (`PRICE.>` matches `PRICE`, `PRICE.A` and
//! `PRICE.A.B`, as ActiveMQ's destination map does). Anything else is a literal
//! segment (`a*` is only the segment `a*`). A `>` before the last segment ends the
//! pattern there, as in ActiveMQ's map: nothing after it is looked at.
//!
//! Used wherever ActiveMQ takes a destination pattern: wildcard subscriptions, policy
//! entries (`<policyEntry queue="ORDERS.>">`), virtual topic rules.

/// The segment separator (ActiveMQ's default `.`).
pub const SEPARATOR: char = '.';
/// Matches exactly one segment.
pub const ANY_CHILD: &str = "*";
/// Matches the remaining segments, zero or more.
pub const ANY_DESCENDANT: &str = ">";

/// One segment of a parsed pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    /// `*`
    One,
    /// `>`: the rest, zero or more segments (always the last segment of a pattern).
    Rest,
}

/// A parsed destination pattern (or a plain name: a pattern without wildcards).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    segments: Vec<Segment>,
}

/// Whether `name` is a pattern rather than one destination: one of its segments is
/// `*` or `>`.
pub fn is_wildcard(name: &str) -> bool {
    name.split(SEPARATOR)
        .any(|s| s == ANY_CHILD || s == ANY_DESCENDANT)
}

impl Pattern {
    /// Every string is a valid pattern.
    pub fn parse(pattern: &str) -> Pattern {
        let mut segments = Vec::new();
        for s in pattern.split(SEPARATOR) {
            match s {
                ANY_DESCENDANT => {
                    segments.push(Segment::Rest);
                    break;
                }
                ANY_CHILD => segments.push(Segment::One),
                literal => segments.push(Segment::Literal(literal.to_owned())),
            }
        }
        Pattern { segments }
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the pattern has a wildcard segment.
    pub fn is_wildcard(&self) -> bool {
        self.segments
            .iter()
            .any(|s| !matches!(s, Segment::Literal(_)))
    }

    /// Whether destination name `name` (a plain name, not a pattern) matches.
    pub fn matches(&self, name: &str) -> bool {
        let mut parts = name.split(SEPARATOR);
        for seg in &self.segments {
            match seg {
                Segment::Rest => return true,
                Segment::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(l) => match parts.next() {
                    Some(p) if p == l => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Pattern::parse(pattern).matches(name)
    }

    #[test]
    fn star_matches_exactly_one_segment() {
        assert!(m("PRICE.*", "PRICE.A"));
        assert!(!m("PRICE.*", "PRICE"));
        assert!(!m("PRICE.*", "PRICE.A.B"));
        assert!(m("PRICE.*.NYSE", "PRICE.IBM.NYSE"));
        assert!(!m("PRICE.*.NYSE", "PRICE.IBM.LSE"));
        assert!(m("*", "A"));
        assert!(!m("*", "A.B"));
    }

    #[test]
    fn greater_than_matches_the_rest_none_included() {
        assert!(m("PRICE.>", "PRICE"));
        assert!(m("PRICE.>", "PRICE.A"));
        assert!(m("PRICE.>", "PRICE.A.B.C"));
        assert!(!m("PRICE.>", "PRICES.A"));
        assert!(m(">", "anything.at.all"));
        assert!(m("A.*.>", "A.B"));
        assert!(m("A.*.>", "A.B.C"));
        assert!(!m("A.*.>", "A"));
        // Segments after `>` are not looked at.
        assert!(m("A.>.C", "A.X.Y"));
    }

    #[test]
    fn literals_match_whole_segments_only() {
        assert!(m("PRICE.A", "PRICE.A"));
        assert!(!m("PRICE.A", "PRICE.AB"));
        assert!(m("a*", "a*"));
        assert!(!m("a*", "ab"));
        assert!(!is_wildcard("a*.b>"));
        assert!(is_wildcard("a.*"));
        assert!(is_wildcard(">"));
        assert!(!Pattern::parse("a.b").is_wildcard());
    }
}
