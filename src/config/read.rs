//! Element tree -> [`BrokerConfig`]: one function per supported element; everything
//! else is reported as [`Ignored`] (once per path) or, for a bad value, as a
//! [`ConfigError`] pointing at the attribute.
//!
//! This file holds the entry point, the [`Reader`] and its reporting; the elements
//! are read in `broker_element.rs` (`<beans>`/`<broker>`), `connectors.rs`
//! (`<transportConnectors>`), `storage.rs` (`<persistenceAdapter>`, `<systemUsage>`),
//! `plugins.rs` (`<plugins>`), `interceptors.rs` (`<destinationInterceptors>`), `policy.rs` (`<destinationPolicy>`), `master.rs` (`<services>`, `masterConnectorURI`),
//! `tandem_element.rs` (`<tandem>`) and `tls.rs` (`<sslContext>`, `<tandem tls*>`);
//! attribute access and placeholders in `attrs.rs`.

use std::collections::HashSet;
use std::path::Path;

use super::xml::{Attr, Element};
use super::{BrokerConfig, ConfigError, Ignored, LoadEnv};

pub(crate) fn read(
    root: &Element,
    source: &Path,
    env: &LoadEnv,
) -> Result<(BrokerConfig, Vec<Ignored>), ConfigError> {
    let mut r = Reader {
        source,
        env,
        ignored: Vec::new(),
        seen: HashSet::new(),
    };
    let (broker, path) = r.find_broker(root)?;
    let config = r.broker(broker, &path)?;
    // Reported in document order, which is how a reader scans the file; the sort is
    // stable so items on one line keep the order they were found in.
    let mut ignored = r.ignored;
    ignored.sort_by_key(|i| i.line);
    Ok((config, ignored))
}

pub(super) struct Reader<'a> {
    pub(super) source: &'a Path,
    pub(super) env: &'a LoadEnv,
    pub(super) ignored: Vec<Ignored>,
    /// Paths already reported, so each is logged once however often it repeats.
    pub(super) seen: HashSet<String>,
}

impl Reader<'_> {
    // ---- reporting -------------------------------------------------------------

    pub(super) fn ignore(&mut self, path: String, line: u32, reason: impl Into<String>) {
        if self.seen.insert(path.clone()) {
            self.ignored.push(Ignored {
                path,
                line,
                reason: reason.into(),
            });
        }
    }

    pub(super) fn ignore_element(&mut self, el: &Element, parent: &str) {
        self.ignore(
            format!("{parent}/{}", el.name),
            el.line,
            "element not supported",
        );
    }

    /// Reports every attribute of `el` not in `known`.
    pub(super) fn check_attrs(&mut self, el: &Element, path: &str, known: &[&str]) {
        for a in &el.attrs {
            if !a.is_xml_plumbing() && !known.contains(&a.local.as_str()) {
                self.ignore(
                    format!("{path}@{}", a.local),
                    a.line,
                    "attribute not supported",
                );
            }
        }
    }

    pub(super) fn attr_err(
        &self,
        el: &Element,
        a: &Attr,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Attribute {
            path: self.source.to_path_buf(),
            line: a.line,
            element: el.name.clone(),
            attribute: a.local.clone(),
            // A secret can only fail on its placeholder syntax or its length, but even
            // then the message must not carry it into a log (`password`,
            // `keyStorePassword`, `trustStorePassword`, `keyStoreKeyPassword`,
            // `replicationSecret`).
            value: if ["password", "secret"]
                .iter()
                .any(|w| a.local.to_ascii_lowercase().contains(w))
            {
                "<redacted>".to_string()
            } else {
                a.value.clone()
            },
            message: message.into(),
        }
    }

    pub(super) fn el_err(&self, el: &Element, message: impl Into<String>) -> ConfigError {
        ConfigError::Element {
            path: self.source.to_path_buf(),
            line: el.line,
            element: el.name.clone(),
            message: message.into(),
        }
    }

    /// Keeps the first of a child that may appear once; a second is an error because
    /// silently picking one would hide a mistake.
    pub(super) fn once<'e>(
        &self,
        slot: &mut Option<&'e Element>,
        el: &'e Element,
    ) -> Result<(), ConfigError> {
        if let Some(first) = slot {
            return Err(self.el_err(
                el,
                format!("appears twice (first at line {}); keep one", first.line),
            ));
        }
        *slot = Some(el);
        Ok(())
    }
}
