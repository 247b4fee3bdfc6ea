//! The master a slave follows: `<broker masterConnectorURI>` or
//! `<services><masterConnector>`.

use super::read::Reader;
use super::xml::{Attr, Element};
use super::{ConfigError, MasterConnector};
use crate::uri::TransportUri;

/// Where the master URI was written: `<broker masterConnectorURI>` or the first
/// `<services><masterConnector remoteURI>` (the reader refuses a second), for errors
/// found once the whole file is read (a TLS master without a trust store).
pub(super) fn master_uri_attr(broker: &Element) -> Option<(&Element, &Attr)> {
    if let Some(a) = broker.attr("masterConnectorURI") {
        return Some((broker, a));
    }
    broker
        .children
        .iter()
        .filter(|s| s.name == "services")
        .flat_map(|s| &s.children)
        .filter(|c| c.name == "masterConnector")
        .find_map(|c| c.attr("remoteURI").map(|a| (c, a)))
}

impl Reader<'_> {
    /// `masterConnectorURI` / `remoteURI`: an address a slave can actually dial. A TLS
    /// scheme (`ssl://`) is fine here; whether a trust store is configured for it is
    /// checked once the whole file is read.
    pub(super) fn master_uri(
        &self,
        el: &Element,
        a: &Attr,
        text: &str,
    ) -> Result<TransportUri, ConfigError> {
        let uri = TransportUri::parse(text).map_err(|e| self.attr_err(el, a, e.to_string()))?;
        if uri.addr.port() == 0 {
            return Err(self.attr_err(el, a, "the master's port cannot be 0"));
        }
        if uri.addr.ip().is_unspecified() {
            return Err(self.attr_err(
                el,
                a,
                format!(
                    "cannot connect to {}; name the master's address",
                    uri.addr.ip()
                ),
            ));
        }
        Ok(uri)
    }

    pub(super) fn services(
        &mut self,
        el: &Element,
        path: &str,
        broker: &Element,
        master: &mut Option<MasterConnector>,
    ) -> Result<(), ConfigError> {
        self.check_attrs(el, path, &[]);
        for c in &el.children {
            if c.name != "masterConnector" {
                self.ignore_element(c, path);
                continue;
            }
            if master.is_some() {
                let first = match broker.attr("masterConnectorURI") {
                    Some(a) => format!("masterConnectorURI on <broker> (line {})", a.line),
                    None => "another <masterConnector>".to_string(),
                };
                return Err(
                    self.el_err(c, format!("the master is already set by {first}; keep one"))
                );
            }
            self.check_attrs(
                c,
                &format!("{path}/masterConnector"),
                &["remoteURI", "userName", "password"],
            );
            let (text, a) = self.required(c, "remoteURI")?;
            *master = Some(MasterConnector {
                uri: self.master_uri(c, a, &text)?,
                user_name: self.value(c, "userName")?.map(|v| v.0),
                password: self.value(c, "password")?.map(|v| v.0),
            });
        }
        Ok(())
    }
}
