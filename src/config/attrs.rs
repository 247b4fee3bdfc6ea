//! Attribute access for the [`Reader`]: placeholders filled, values parsed, errors
//! pointing at the attribute.

use std::path::Path;

use super::read::Reader;
use super::value::{expand, parse_size, PlaceholderError};
use super::xml::{Attr, Element};
use super::ConfigError;

impl Reader<'_> {
    /// The attribute's value with placeholders filled, if the attribute is present.
    pub(super) fn value<'e>(
        &self,
        el: &'e Element,
        name: &str,
    ) -> Result<Option<(String, &'e Attr)>, ConfigError> {
        let Some(a) = el.attr(name) else {
            return Ok(None);
        };
        // `${activemq.conf}` is the directory ActiveMQ's activemq.xml lives in
        // (`$ACTIVEMQ_BASE/conf`): unless the environment says otherwise, this file's
        // directory, so the stock `file:${activemq.conf}/broker.ks` finds the store
        // beside the configuration.
        let conf_dir = || {
            let dir = self.source.parent().unwrap_or_else(|| Path::new(""));
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            // Absolute, so a path under it is not resolved against this directory twice.
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            Some(dir.display().to_string())
        };
        let lookup = |name: &str| {
            (self.env.vars)(name).or_else(|| match name {
                "activemq.conf" => ["activemq_conf", "ACTIVEMQ_CONF"]
                    .iter()
                    .find_map(|n| (self.env.vars)(n))
                    .or_else(conf_dir),
                _ => None,
            })
        };
        match expand(&a.value, &lookup) {
            Ok(v) => Ok(Some((v, a))),
            Err(PlaceholderError::Unset(p)) => Err(self.attr_err(
                el,
                a,
                format!(
                    "placeholder ${{{p}}} is not set (looked for environment variables \
                     {p}, {u}, {U}; or write ${{{p}:-default}})",
                    u = p.replace('.', "_"),
                    U = p.replace('.', "_").to_ascii_uppercase(),
                ),
            )),
            Err(PlaceholderError::Unterminated) => {
                Err(self.attr_err(el, a, "\"${\" without a closing \"}\""))
            }
        }
    }

    pub(super) fn required<'e>(
        &self,
        el: &'e Element,
        name: &str,
    ) -> Result<(String, &'e Attr), ConfigError> {
        self.value(el, name)?
            .ok_or_else(|| self.el_err(el, format!("missing attribute \"{name}\"")))
    }

    /// A present attribute parsed by `parse`, whose error completes "expected ...".
    pub(super) fn typed<T>(
        &self,
        el: &Element,
        name: &str,
        parse: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((v, a)) = self.value(el, name)? else {
            return Ok(None);
        };
        parse(&v).map(Some).map_err(|expected| {
            // Show the filled-in value too when a placeholder produced it.
            let message = if v == a.value {
                format!("expected {expected}")
            } else {
                format!("expected {expected}, got \"{v}\"")
            };
            self.attr_err(el, a, message)
        })
    }

    pub(super) fn non_empty(
        &self,
        el: &Element,
        name: &str,
    ) -> Result<Option<String>, ConfigError> {
        self.typed(el, name, |s| {
            let s = s.trim();
            if s.is_empty() {
                Err("a non-empty value")
            } else {
                Ok(s.to_string())
            }
        })
    }
}

/// A size parser with a lower bound; `expected` completes "expected ..." for both a
/// malformed and a too-small value, so the message always says what is acceptable.
pub(super) fn size_at_least(
    min: u64,
    expected: &'static str,
) -> impl Fn(&str) -> Result<u64, &'static str> {
    move |s| match parse_size(s) {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(expected),
        Err(e) => Err(e),
    }
}
