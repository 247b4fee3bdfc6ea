//! Where and how much is stored: `<persistenceAdapter><kahaDB>` and
//! `<systemUsage>` (memory and store limits).

use std::path::PathBuf;

use super::attrs::size_at_least;
use super::read::Reader;
use super::value::parse_size;
use super::xml::Element;
use super::ConfigError;

impl Reader<'_> {
    pub(super) fn persistence(
        &mut self,
        el: &Element,
        path: &str,
    ) -> Result<(Option<PathBuf>, Option<u64>), ConfigError> {
        self.check_attrs(el, path, &[]);
        let mut kaha = None;
        for c in &el.children {
            if c.name == "kahaDB" {
                self.once(&mut kaha, c)?;
            } else {
                self.ignore(
                    format!("{path}/{}", c.name),
                    c.line,
                    "persistence adapter not supported; Tandem keeps its own journal \
                     (configure it with <kahaDB>)",
                );
            }
        }
        let Some(k) = kaha else {
            return Ok((None, None));
        };
        let kpath = format!("{path}/kahaDB");
        self.check_attrs(k, &kpath, &["directory", "journalMaxFileLength"]);
        for c in &k.children {
            self.ignore_element(c, &kpath);
        }
        let dir = self.non_empty(k, "directory")?.map(PathBuf::from);
        let segment = self.typed(k, "journalMaxFileLength", |s| {
            let n = parse_size(s)?;
            if !(64 << 10..=2 << 30).contains(&n) || n % 4096 != 0 {
                return Err("a multiple of 4 kb between 64 kb and 2 gb");
            }
            Ok(n)
        })?;
        Ok((dir, segment))
    }

    /// `<systemUsage><systemUsage>` with `<memoryUsage><memoryUsage limit/>` and
    /// `<storeUsage><storeUsage limit/>`: Spring's factory-bean nesting, hence each
    /// name twice. Returns (memory limit, store limit).
    pub(super) fn system_usage(
        &mut self,
        outer: &Element,
        path: &str,
    ) -> Result<(Option<u64>, Option<u64>), ConfigError> {
        self.check_attrs(outer, path, &[]);
        let mut inner = None;
        for c in &outer.children {
            if c.name == "systemUsage" {
                self.once(&mut inner, c)?;
            } else {
                self.ignore_element(c, path);
            }
        }
        let Some(inner) = inner else {
            return Ok((None, None));
        };
        let path = format!("{path}/systemUsage");
        self.check_attrs(inner, &path, &[]);
        let (mut memory, mut store) = (None, None);
        for c in &inner.children {
            match c.name.as_str() {
                "memoryUsage" => self.once(&mut memory, c)?,
                "storeUsage" => self.once(&mut store, c)?,
                _ => self.ignore_element(c, &path),
            }
        }
        let memory = match memory {
            Some(m) => self.usage_limit(
                m,
                &format!("{path}/memoryUsage"),
                1 << 20,
                "a size of at least 1 mb",
            )?,
            None => None,
        };
        let store = match store {
            Some(s) => self.usage_limit(
                s,
                &format!("{path}/storeUsage"),
                4 << 20,
                "a size of at least 4 mb",
            )?,
            None => None,
        };
        Ok((memory, store))
    }

    /// `<xUsage><xUsage limit/></xUsage>` (`outer` is the first `xUsage`).
    pub(super) fn usage_limit(
        &mut self,
        outer: &Element,
        path: &str,
        min: u64,
        expected: &'static str,
    ) -> Result<Option<u64>, ConfigError> {
        self.check_attrs(outer, path, &[]);
        let mut inner = None;
        for c in &outer.children {
            if c.name == outer.name {
                self.once(&mut inner, c)?;
            } else {
                self.ignore_element(c, path);
            }
        }
        let Some(inner) = inner else {
            return Ok(None);
        };
        let path = format!("{path}/{}", outer.name);
        self.check_attrs(inner, &path, &["limit"]);
        self.typed(inner, "limit", size_at_least(min, expected))
    }
}
