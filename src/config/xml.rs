//! A small element tree over quick-xml's event reader, with a line number on every
//! element and every attribute.
//!
//! Why a tree and not serde: the loader must (a) point at the exact line of a bad
//! attribute, which may sit on a later line than its element's `<`, and (b) report
//! every element and attribute it did not consume. Both are easy on a tree that keeps
//! positions and awkward through a derive.
//!
//! Names are matched by local name (`<amq:broker>` and `<broker xmlns="...">` are both
//! `broker`); attribute values are XML-unescaped but otherwise raw (placeholders are
//! expanded later, only for attributes the loader reads).

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

#[derive(Debug, Clone)]
pub(crate) struct Element {
    /// Local name, without any namespace prefix.
    pub name: String,
    /// 1-based line of the element's `<`.
    pub line: u32,
    pub attrs: Vec<Attr>,
    pub children: Vec<Element>,
}

#[derive(Debug, Clone)]
pub(crate) struct Attr {
    /// Name as written, prefix included (`xmlns:amq`, `xsi:schemaLocation`).
    pub qname: String,
    /// Name without prefix; what the loader matches on.
    pub local: String,
    /// XML-unescaped value.
    pub value: String,
    /// 1-based line where the attribute's name starts.
    pub line: u32,
}

impl Attr {
    /// Namespace declarations and `xsi:` hints: Spring/XML plumbing, accepted anywhere
    /// and never reported as ignored.
    pub fn is_xml_plumbing(&self) -> bool {
        self.qname == "xmlns" || self.qname.contains(':')
    }
}

impl Element {
    pub fn attr(&self, local: &str) -> Option<&Attr> {
        self.attrs
            .iter()
            .find(|a| a.local == local && !a.is_xml_plumbing())
    }
}

/// A malformed document: line and quick-xml's description.
#[derive(Debug)]
pub(crate) struct XmlError {
    pub line: u32,
    pub message: String,
}

/// Maps byte offsets to 1-based line numbers.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    fn line(&self, offset: usize) -> u32 {
        let n = self.starts.partition_point(|&s| s <= offset);
        u32::try_from(n.max(1)).unwrap_or(u32::MAX)
    }
}

/// Parses a whole document and returns its root element.
pub(crate) fn parse_document(text: &str) -> Result<Element, XmlError> {
    let lines = Lines::new(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    // Stack of open elements; the root ends up alone at the bottom.
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| XmlError {
            line: lines.line(to_usize(reader.error_position())),
            message: e.to_string(),
        })?;
        let end = to_usize(reader.buffer_position());
        match event {
            Event::Start(start) => {
                let el = element(text, &lines, end, &start)?;
                stack.push(el);
            }
            Event::Empty(start) => {
                let el = element(text, &lines, end, &start)?;
                close(&mut stack, &mut root, el, &lines, end)?;
            }
            Event::End(_) => {
                // quick-xml has already checked that the end name matches.
                let Some(el) = stack.pop() else {
                    return Err(XmlError {
                        line: lines.line(end),
                        message: "closing tag without an opening tag".into(),
                    });
                };
                close(&mut stack, &mut root, el, &lines, end)?;
            }
            Event::Eof => break,
            // Text, comments, CDATA, processing instructions and the doctype carry
            // nothing the loader reads.
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError {
            line: open.line,
            message: format!("<{}> is never closed", open.name),
        });
    }
    root.ok_or_else(|| XmlError {
        line: 1,
        message: "the document has no root element".into(),
    })
}

fn close(
    stack: &mut [Element],
    root: &mut Option<Element>,
    el: Element,
    lines: &Lines,
    end: usize,
) -> Result<(), XmlError> {
    if let Some(parent) = stack.last_mut() {
        parent.children.push(el);
        return Ok(());
    }
    if root.is_some() {
        return Err(XmlError {
            line: lines.line(end),
            message: "more than one root element".into(),
        });
    }
    *root = Some(el);
    Ok(())
}

fn to_usize(pos: u64) -> usize {
    usize::try_from(pos).unwrap_or(usize::MAX)
}

/// Builds an element from a start tag that ends just before byte `end`.
fn element(text: &str, lines: &Lines, end: usize, start: &BytesStart) -> Result<Element, XmlError> {
    // `<` cannot occur unescaped inside a tag, so the last `<` before the tag's end
    // is its start.
    let tag_start = text.get(..end).and_then(|t| t.rfind('<')).unwrap_or(0);
    let tag_line = lines.line(tag_start);
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let offsets = attr_offsets(text.get(tag_start..end).unwrap_or(""));
    let mut attrs = Vec::new();
    for (i, attr) in start.attributes().enumerate() {
        let attr = attr.map_err(|e| XmlError {
            line: tag_line,
            message: format!("<{name}>: {e}"),
        })?;
        let qname = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let local = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let value = attr
            .unescape_value()
            .map_err(|e| XmlError {
                line: tag_line,
                message: format!("<{name} {qname}>: {e}"),
            })?
            .into_owned();
        // The scanner and quick-xml walk the same attributes in the same order; if they
        // ever disagree, the element's line is still a true answer.
        let line = offsets
            .get(i)
            .map(|&off| lines.line(tag_start + off))
            .unwrap_or(tag_line);
        attrs.push(Attr {
            qname,
            local,
            value,
            line,
        });
    }
    Ok(Element {
        name,
        line: tag_line,
        attrs,
        children: Vec::new(),
    })
}

/// Byte offsets (within `tag`, which starts at `<`) of each attribute name, in order.
/// Only positions are wanted; quick-xml has already validated the syntax.
fn attr_offsets(tag: &str) -> Vec<usize> {
    let b = tag.as_bytes();
    let mut out = Vec::new();
    // Skip `<` and the element name.
    let mut i = 1;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' && b[i] != b'/' {
        i += 1;
    }
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] == b'>' || b[i] == b'/' {
            break;
        }
        out.push(i);
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'=') {
            i += 1;
        }
        let Some(&quote) = b.get(i) else { break };
        if quote != b'"' && quote != b'\'' {
            break;
        }
        i += 1;
        while i < b.len() && b[i] != quote {
            i += 1;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_with_lines() {
        let doc = "<?xml version=\"1.0\"?>\n<beans xmlns=\"x\">\n  <!-- c -->\n  <amq:broker a=\"1\"\n     b='&lt;2&gt;'>\n    <x/>\n  </amq:broker>\n</beans>\n";
        let root = parse_document(doc).unwrap();
        assert_eq!(root.name, "beans");
        assert_eq!(root.line, 2);
        assert!(root.attrs[0].is_xml_plumbing());
        let broker = &root.children[0];
        assert_eq!(broker.name, "broker");
        assert_eq!(broker.line, 4);
        assert_eq!(broker.attr("a").unwrap().line, 4);
        let b = broker.attr("b").unwrap();
        assert_eq!(b.line, 5);
        assert_eq!(b.value, "<2>");
        assert_eq!(broker.children[0].name, "x");
        assert_eq!(broker.children[0].line, 6);
    }

    #[test]
    fn malformed() {
        let e = parse_document("<a>\n<b>\n</a>\n").unwrap_err();
        assert_eq!(e.line, 3, "{}", e.message);
        let e = parse_document("<a>\n<b x=\"1\" x=\"2\"/>\n</a>").unwrap_err();
        assert_eq!(e.line, 2, "{}", e.message);
        let e = parse_document("<a>\n<b>\n").unwrap_err();
        assert!(
            e.message.contains("never closed") || e.line >= 1,
            "{}",
            e.message
        );
        assert!(parse_document("").is_err());
    }
}
