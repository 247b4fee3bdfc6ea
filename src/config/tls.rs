//! TLS material and who needs it.
//!
//! Two spellings of the same [`TlsSettings`], one or the other per part:
//!
//! * ActiveMQ's `<broker><sslContext><sslContext keyStore keyStorePassword
//!   [keyStoreKeyPassword] trustStore trustStorePassword/></sslContext>`, PKCS12 stores
//!   only. A JKS or JCEKS store (by `keyStoreType`/`trustStoreType` or by the file's
//!   first four bytes) is an error that says how to convert it with `keytool`.
//! * Tandem's PEM files: `<tandem tlsCertificate tlsPrivateKey tlsTrustedCa>`.
//!
//! Paths may be `file:` URLs; relative ones are resolved against the configuration
//! file's directory. The files are not read here (the TLS module loads them at startup
//! and reports their errors); only a store's first bytes are peeked, when readable.
//!
//! [`Reader::check_tls_users`] then refuses a TLS connector without an identity, client
//! auth without a trust store, and a TLS master URI without a trust store.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::connectors::RawConnector;
use super::read::Reader;
use super::xml::{Attr, Element};
use super::{ClientAuth, ConfigError, Secret, TlsIdentity, TlsSettings, TlsTrust};
use crate::uri::TransportUri;

/// `<tandem>` attributes read here (the `<tandem>` reader lists them as known).
pub(super) const TANDEM_TLS_ATTRS: [&str; 3] = ["tlsCertificate", "tlsPrivateKey", "tlsTrustedCa"];

/// Inner `<sslContext>` attributes Tandem reads.
const SSL_CONTEXT_ATTRS: [&str; 7] = [
    "keyStore",
    "keyStorePassword",
    "keyStoreKeyPassword",
    "keyStoreType",
    "trustStore",
    "trustStorePassword",
    "trustStoreType",
];

/// Inner `<sslContext>` attributes ActiveMQ hands to the JSSE; rustls has its own.
const JSSE_ATTRS: [&str; 4] = [
    "keyStoreAlgorithm",
    "trustStoreAlgorithm",
    "protocol",
    "secureRandomAlgorithm",
];

/// What one spelling configures: identity and trust, each with where it was written.
type Material<'e> = (Option<Found<'e, TlsIdentity>>, Option<Found<'e, TlsTrust>>);

/// A piece of material and the attribute it came from (for "give either ... or ...").
struct Found<'e, T> {
    value: T,
    el: &'e Element,
    attr: &'e Attr,
}

/// Which store of an `<sslContext>`: the attribute names differ only by prefix.
#[derive(Clone, Copy)]
enum Store {
    Key,
    Trust,
}

impl Store {
    fn prefix(self) -> &'static str {
        match self {
            Store::Key => "keyStore",
            Store::Trust => "trustStore",
        }
    }

    /// The file extension ActiveMQ's examples give a Java store of this kind.
    fn extension(self) -> &'static str {
        match self {
            Store::Key => "ks",
            Store::Trust => "ts",
        }
    }
}

impl Reader<'_> {
    /// Reads `<sslContext>` (the outer element, if present) and `<tandem>`'s TLS
    /// attributes; `None` when neither configures anything.
    pub(super) fn tls_settings(
        &mut self,
        ssl_context: Option<&Element>,
        ssl_path: &str,
        tandem: Option<&Element>,
    ) -> Result<Option<TlsSettings>, ConfigError> {
        let (p12_identity, p12_trust) = match ssl_context {
            Some(outer) => self.ssl_context(outer, ssl_path)?,
            None => (None, None),
        };
        let (pem_identity, pem_trust) = match tandem {
            Some(t) => self.tandem_tls(t)?,
            None => (None, None),
        };
        let identity = match (p12_identity, pem_identity) {
            (Some(p12), Some(pem)) => {
                return Err(self.attr_err(
                    pem.el,
                    pem.attr,
                    format!(
                        "give either keyStore on <sslContext> (line {}) or \
                         tlsCertificate/tlsPrivateKey on <tandem>, not both",
                        p12.attr.line
                    ),
                ))
            }
            (a, b) => a.or(b).map(|f| f.value),
        };
        let trust = match (p12_trust, pem_trust) {
            (Some(p12), Some(pem)) => {
                return Err(self.attr_err(
                    pem.el,
                    pem.attr,
                    format!(
                        "give either trustStore on <sslContext> (line {}) or tlsTrustedCa \
                         on <tandem>, not both",
                        p12.attr.line
                    ),
                ))
            }
            (a, b) => a.or(b).map(|f| f.value),
        };
        Ok((identity.is_some() || trust.is_some()).then_some(TlsSettings { identity, trust }))
    }

    /// `<sslContext><sslContext .../></sslContext>`: the PKCS12 identity and trust.
    fn ssl_context<'e>(
        &mut self,
        outer: &'e Element,
        path: &str,
    ) -> Result<Material<'e>, ConfigError> {
        self.check_attrs(outer, path, &[]);
        let mut inner = None;
        for c in &outer.children {
            if c.name == "sslContext" {
                self.once(&mut inner, c)?;
            } else {
                self.ignore_element(c, path);
            }
        }
        let Some(inner) = inner else {
            self.ignore(
                path.to_string(),
                outer.line,
                "empty: the stores are set on an inner <sslContext keyStore=... trustStore=.../>",
            );
            return Ok((None, None));
        };
        let path = format!("{path}/sslContext");
        // In document order, as `check_attrs` reports, with a reason of their own for
        // the JSSE attributes.
        for a in &inner.attrs {
            let name = a.local.as_str();
            if a.is_xml_plumbing() || SSL_CONTEXT_ATTRS.contains(&name) {
                continue;
            }
            let reason = if JSSE_ATTRS.contains(&name) {
                "Tandem's TLS (rustls) offers TLS 1.2 and 1.3 with its own algorithms"
            } else {
                "attribute not supported"
            };
            self.ignore(format!("{path}@{name}"), a.line, reason);
        }
        for c in &inner.children {
            self.ignore_element(c, &path);
        }

        let identity = match self.store(inner, Store::Key)? {
            Some((path, password, attr)) => Some(Found {
                value: TlsIdentity::Pkcs12 {
                    path,
                    password,
                    key_password: self
                        .value(inner, "keyStoreKeyPassword")?
                        .map(|(v, _)| Secret(v)),
                },
                el: inner,
                attr,
            }),
            None => {
                self.without_store(inner, &path, &["keyStorePassword", "keyStoreKeyPassword"]);
                None
            }
        };
        let trust = match self.store(inner, Store::Trust)? {
            Some((path, password, attr)) => Some(Found {
                value: TlsTrust::Pkcs12 { path, password },
                el: inner,
                attr,
            }),
            None => {
                self.without_store(inner, &path, &["trustStorePassword"]);
                None
            }
        };
        Ok((identity, trust))
    }

    /// One store of the inner `<sslContext>`: its resolved path and password, after its
    /// type (attribute and, if the file is readable, content) is checked to be PKCS12.
    fn store<'e>(
        &self,
        el: &'e Element,
        which: Store,
    ) -> Result<Option<(PathBuf, Secret, &'e Attr)>, ConfigError> {
        let prefix = which.prefix();
        let found = self.file_path(el, prefix)?;
        let type_name = format!("{prefix}Type");
        if let Some((t, a)) = self.value(el, &type_name)? {
            let kind = match t.trim().to_ascii_lowercase().as_str() {
                "pkcs12" => None,
                "jks" => Some("JKS"),
                "jceks" => Some("JCEKS"),
                _ => {
                    return Err(self.attr_err(
                        el,
                        a,
                        "expected PKCS12 (the only store type Tandem reads)",
                    ))
                }
            };
            if let Some(kind) = kind {
                let src = found.as_ref().map_or_else(
                    || PathBuf::from(format!("broker.{}", which.extension())),
                    |(p, _)| p.clone(),
                );
                return Err(self.attr_err(
                    el,
                    a,
                    format!(
                        "{kind} stores are not supported; {}, then point {prefix} at the \
                         .p12 file and drop {type_name}",
                        convert_hint(&src, kind)
                    ),
                ));
            }
        }
        let Some((path, attr)) = found else {
            return Ok(None);
        };
        if let Some(kind) = java_store_kind(&path) {
            return Err(self.attr_err(
                el,
                attr,
                format!(
                    "{} is a {kind} store, which Tandem does not read; {}, then point {prefix} \
                     at the .p12 file",
                    path.display(),
                    convert_hint(&path, kind)
                ),
            ));
        }
        let password_name = format!("{prefix}Password");
        let Some((password, _)) = self.value(el, &password_name)? else {
            return Err(self.attr_err(
                el,
                attr,
                format!("{password_name} is missing (a PKCS12 store is opened with its password)"),
            ));
        };
        Ok(Some((path, Secret(password), attr)))
    }

    /// Reports a store's password attributes given without the store.
    fn without_store(&mut self, el: &Element, path: &str, names: &[&str]) {
        for name in names {
            if let Some(a) = el.attr(name) {
                self.ignore(format!("{path}@{name}"), a.line, "no store to open with it");
            }
        }
    }

    /// `<tandem tlsCertificate tlsPrivateKey tlsTrustedCa>`: PEM identity and trust.
    fn tandem_tls<'e>(&self, el: &'e Element) -> Result<Material<'e>, ConfigError> {
        let certificate = self.file_path(el, "tlsCertificate")?;
        let private_key = self.file_path(el, "tlsPrivateKey")?;
        let identity =
            match (certificate, private_key) {
                (Some((certificate, attr)), Some((private_key, _))) => Some(Found {
                    value: TlsIdentity::Pem {
                        certificate,
                        private_key,
                    },
                    el,
                    attr,
                }),
                (Some((_, a)), None) => {
                    return Err(self.attr_err(
                        el,
                        a,
                        "tlsPrivateKey is missing; give both tlsCertificate and tlsPrivateKey, or \
                     neither",
                    ))
                }
                (None, Some((_, a))) => return Err(self.attr_err(
                    el,
                    a,
                    "tlsCertificate is missing; give both tlsCertificate and tlsPrivateKey, or \
                     neither",
                )),
                (None, None) => None,
            };
        let trust = self.file_path(el, "tlsTrustedCa")?.map(|(ca, attr)| Found {
            value: TlsTrust::Pem { ca },
            el,
            attr,
        });
        Ok((identity, trust))
    }

    /// A path attribute as ActiveMQ's resource loader takes it: a plain path or a
    /// `file:` URL, relative to the configuration file's directory. `classpath:` has no
    /// meaning outside Java and is refused.
    fn file_path<'e>(
        &self,
        el: &'e Element,
        name: &str,
    ) -> Result<Option<(PathBuf, &'e Attr)>, ConfigError> {
        let Some((v, a)) = self.value(el, name)? else {
            return Ok(None);
        };
        let v = v.trim();
        let lower = v.to_ascii_lowercase();
        if lower.starts_with("classpath:") {
            return Err(self.attr_err(
                el,
                a,
                "classpath: resources are Java's; give a file path or a file: URL",
            ));
        }
        // "file://" before "file:", so "file:///etc/x" keeps its leading "/".
        let rest = if lower.starts_with("file://") {
            &v["file://".len()..]
        } else if lower.starts_with("file:") {
            &v["file:".len()..]
        } else {
            v
        };
        if rest.is_empty() {
            return Err(self.attr_err(el, a, "expected a file path"));
        }
        if rest.contains("://") {
            return Err(self.attr_err(el, a, "expected a file path or a file: URL"));
        }
        let rest = Path::new(rest);
        let resolved = if rest.is_absolute() {
            rest.to_path_buf()
        } else {
            self.source
                .parent()
                .unwrap_or_else(|| Path::new(""))
                .join(rest)
        };
        Ok(Some((resolved, a)))
    }

    /// Refuses what uses TLS without the material it needs: a TLS connector without an
    /// identity, client auth without trust, a TLS master URI without trust.
    pub(super) fn check_tls_users(
        &self,
        tls: Option<&TlsSettings>,
        connectors: &[RawConnector<'_>],
        master: Option<(&TransportUri, &Element, &Attr)>,
    ) -> Result<(), ConfigError> {
        let identity = tls.is_some_and(|t| t.identity.is_some());
        let trust = tls.is_some_and(|t| t.trust.is_some());
        for c in connectors {
            let Some(auth) = c.tls else { continue };
            if !identity {
                return Err(self.attr_err(
                    c.el,
                    c.uri_attr,
                    format!(
                        "connector \"{}\" uses TLS but no keyStore (sslContext) or \
                         tlsCertificate is configured",
                        c.name
                    ),
                ));
            }
            let option = match auth {
                ClientAuth::None => continue,
                ClientAuth::Want => "wantClientAuth",
                ClientAuth::Need => "needClientAuth",
            };
            if !trust {
                return Err(self.attr_err(
                    c.el,
                    c.uri_attr,
                    format!(
                        "connector \"{}\" asks for client certificates ({option}) but no \
                         trustStore (sslContext) or tlsTrustedCa is configured to verify them",
                        c.name
                    ),
                ));
            }
        }
        if let Some((uri, el, a)) = master {
            if uri.scheme.is_tls() && !trust {
                return Err(self.attr_err(
                    el,
                    a,
                    "the slave verifies the master's certificate: configure trustStore \
                     (sslContext) or tlsTrustedCa (tandem)",
                ));
            }
        }
        Ok(())
    }
}

/// The keytool command that converts a Java store to PKCS12 beside it.
fn convert_hint(src: &Path, kind: &str) -> String {
    let mut dest = src.with_extension("p12");
    if dest == src {
        dest = src.with_extension("pkcs12.p12");
    }
    format!(
        "convert it to PKCS12: keytool -importkeystore -srckeystore {} -srcstoretype {kind} \
         -destkeystore {} -deststoretype PKCS12",
        src.display(),
        dest.display()
    )
}

/// `Some("JKS")` / `Some("JCEKS")` when the file exists and starts with that format's
/// magic number; `None` otherwise, unreadable files included (the TLS module reports
/// those when it loads the store).
fn java_store_kind(path: &Path) -> Option<&'static str> {
    // Only regular files: opening a FIFO would block the load.
    std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .ok()?;
    match magic {
        [0xFE, 0xED, 0xFE, 0xED] => Some("JKS"),
        [0xCE, 0xCE, 0xCE, 0xCE] => Some("JCEKS"),
        _ => None,
    }
}
