//! ActiveMQ's destination wildcards: names are paths of segments separated by `.`;
//! in a pattern a segment `*` matches exactly one segment and a segment `>` matches
//! every remaining segment, none included (`PRICE.>` matches `PRICE`, `PRICE.A` and
//! `PRICE.A.B`, as ActiveMQ's destination map does). Anything else is a literal
//! segment (`a*` is only the segment `a*`). A `>` before the last segment ends the
//! pattern there, as in ActiveMQ's map: nothing after it is looked at.
//!
//! Used for wildcard subscriptions (`broker::core::wildcard_subs`), and meant for every
//! other place ActiveMQ takes a destination pattern (policy entries,
//! `<policyEntry queue="ORDERS.>">`). Virtual topic rules still use their own matcher
//! (`virtual_topic.rs`, whose final `>` wants at least one segment).
//!
//! [`WildcardIndex`] holds many patterns in a trie keyed by their segments, so finding
//! every pattern a name matches walks the name's segments (plus one `*` branch per
//! level), not every pattern: what a publish to a topic with wildcard subscribers costs.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

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

/// Values filed under patterns: [`WildcardIndex::matching`] finds the values of every
/// pattern a destination name matches. A trie keyed by segments: a lookup visits, per
/// segment of the name, the literal child and the `*` child of each node reached, so
/// it costs O(segments) for patterns without `*`, and never more than the trie's size.
#[derive(Debug)]
pub struct WildcardIndex<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug)]
struct Node<T> {
    literal: HashMap<String, Node<T>>,
    /// The `*` child.
    one: Option<Box<Node<T>>>,
    /// Values of patterns that end here.
    here: HashSet<T>,
    /// Values of patterns that end here with `>` (this node and everything below).
    rest: HashSet<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            literal: HashMap::new(),
            one: None,
            here: HashSet::new(),
            rest: HashSet::new(),
        }
    }
}

impl<T: Eq + Hash> Node<T> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.one.is_none()
            && self.here.is_empty()
            && self.rest.is_empty()
    }

    /// Removes `value` under `segments`; prunes nodes left empty. True if it was there.
    fn remove(&mut self, segments: &[Segment], value: &T) -> bool {
        let Some((first, tail)) = segments.split_first() else {
            return self.here.remove(value);
        };
        match first {
            Segment::Rest => self.rest.remove(value),
            Segment::One => {
                let Some(child) = self.one.as_mut() else {
                    return false;
                };
                let removed = child.remove(tail, value);
                if child.is_empty() {
                    self.one = None;
                }
                removed
            }
            Segment::Literal(l) => {
                let Some(child) = self.literal.get_mut(l) else {
                    return false;
                };
                let removed = child.remove(tail, value);
                if child.is_empty() {
                    self.literal.remove(l);
                }
                removed
            }
        }
    }

    fn collect<'a>(&'a self, parts: &[&str], out: &mut Vec<&'a T>) {
        out.extend(self.rest.iter());
        let Some((first, tail)) = parts.split_first() else {
            out.extend(self.here.iter());
            return;
        };
        if let Some(child) = self.literal.get(*first) {
            child.collect(tail, out);
        }
        if let Some(child) = &self.one {
            child.collect(tail, out);
        }
    }
}

impl<T> Default for WildcardIndex<T> {
    fn default() -> Self {
        WildcardIndex {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T: Eq + Hash> WildcardIndex<T> {
    /// Files `value` under `pattern`. False if it was there already.
    pub fn insert(&mut self, pattern: &Pattern, value: T) -> bool {
        let mut node = &mut self.root;
        for seg in &pattern.segments {
            node = match seg {
                Segment::Rest => {
                    let added = node.rest.insert(value);
                    self.len += usize::from(added);
                    return added;
                }
                Segment::One => node.one.get_or_insert_with(Box::default),
                Segment::Literal(l) => node.literal.entry(l.clone()).or_default(),
            };
        }
        let added = node.here.insert(value);
        self.len += usize::from(added);
        added
    }

    /// Removes `value` from under `pattern`. False if it was not there.
    pub fn remove(&mut self, pattern: &Pattern, value: &T) -> bool {
        let removed = self.root.remove(&pattern.segments, value);
        self.len -= usize::from(removed);
        removed
    }

    /// The values of every pattern destination name `name` matches (each value once
    /// per pattern it is filed under).
    pub fn matching(&self, name: &str) -> Vec<&T> {
        let parts: Vec<&str> = name.split(SEPARATOR).collect();
        let mut out = Vec::new();
        self.root.collect(&parts, &mut out);
        out
    }

    /// How many (pattern, value) pairs are filed.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
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

    /// The index agrees with `Pattern::matches` on every (pattern, name) pair.
    #[test]
    fn index_finds_exactly_the_matching_patterns() {
        let patterns = [
            "PRICE.>",
            "PRICE.*",
            "PRICE.*.NYSE",
            "PRICE.IBM.NYSE",
            "*",
            ">",
            "A.*.>",
            "PRICE",
            "*.*",
            "A.>.C",
        ];
        let names = [
            "PRICE",
            "PRICE.A",
            "PRICE.IBM.NYSE",
            "PRICE.IBM.LSE",
            "A",
            "A.B",
            "A.B.C",
            "B.C",
            "PRICES.A",
            "PRICE.>",
            "",
        ];
        let mut index = WildcardIndex::default();
        for (i, p) in patterns.iter().enumerate() {
            assert!(index.insert(&Pattern::parse(p), i));
        }
        assert_eq!(index.len(), patterns.len());
        for name in names {
            let mut got: Vec<usize> = index.matching(name).into_iter().copied().collect();
            got.sort_unstable();
            let want: Vec<usize> = (0..patterns.len())
                .filter(|&i| m(patterns[i], name))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn index_insert_and_remove_prune_and_count() {
        let mut index = WildcardIndex::default();
        let p = Pattern::parse("A.*.C");
        let q = Pattern::parse("A.>");
        assert!(index.insert(&p, 1));
        assert!(!index.insert(&p, 1), "already filed");
        assert!(index.insert(&p, 2));
        assert!(index.insert(&q, 1));
        assert_eq!(index.len(), 3);
        assert_eq!(index.matching("A.B.C").len(), 3);
        assert!(index.remove(&p, &1));
        assert!(!index.remove(&p, &1), "gone already");
        assert!(!index.remove(&Pattern::parse("X.Y"), &1));
        let mut left: Vec<i32> = index.matching("A.B.C").into_iter().copied().collect();
        left.sort_unstable();
        assert_eq!(left, vec![1, 2]);
        assert!(index.remove(&p, &2));
        assert!(index.remove(&q, &1));
        assert!(index.is_empty());
        assert!(index.root.is_empty(), "every node pruned");
    }
}
