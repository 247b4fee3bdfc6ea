//! TLS material: the configured stores and PEM files turned into rustls configurations,
//! checked once at startup so that a bad file is a one-line error naming it, not a
//! failed handshake later.
//!
//! * PKCS12 stores as `keytool` writes them (`-storetype PKCS12`, the default since
//!   Java 9: PBES2/AES-256 with an HMAC-SHA256 MAC; the older PBES1 ciphers too). A
//!   key store's first private-key entry is the identity; every certificate entry of a
//!   trust store is a trusted root (what Java's `TrustManagerFactory` does).
//! * PEM: a certificate chain (leaf first), a private key (PKCS#8, PKCS#1 or SEC1) and
//!   CA certificates.
//! * TLS 1.2 and 1.3 with rustls's ring provider and its default cipher suites.
//!
//! Used by the broker's connectors ([`server_config`]), by a slave connecting to its
//! master and by the bundled clients ([`client_config`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use crate::config::{ClientAuth, TlsIdentity, TlsSettings, TlsTrust};

/// Why TLS material could not be used. Each names the file (or the setting) at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// Something is needed that is not configured (e.g. no trust for client auth).
    #[error("{0}")]
    Missing(&'static str),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("\"{0}\" is not a valid TLS server name")]
    ServerName(String),
}

fn file_error(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The ring provider, explicitly: the process never depends on a default provider
/// being installed. rustls marks it deprecated because ring has no post-quantum key
/// exchange; the provider that has one (aws-lc-rs) needs cmake and a long C build,
/// which the machines we build on do not all have.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key, loaded and checked.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// What a TLS connector with `auth` presents and checks. `settings.identity` is
/// required; `settings.trust` too when `auth` asks for client certificates.
pub fn server_config(
    settings: &TlsSettings,
    auth: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let identity = match &settings.identity {
        Some(identity) => load_identity(identity)?,
        None => {
            return Err(TlsError::Missing(
                "a TLS connector needs a keyStore (sslContext) or tlsCertificate/tlsPrivateKey",
            ))
        }
    };
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Want | ClientAuth::Need => {
            let Some(trust) = &settings.trust else {
                return Err(TlsError::Missing(
                    "needClientAuth/wantClientAuth need a trustStore (sslContext) or tlsTrustedCa",
                ));
            };
            let roots = Arc::new(load_trust(trust)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = match auth {
                ClientAuth::Want => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(identity.chain, identity.key)?;
    Ok(Arc::new(config))
}

/// What a client (a slave connecting to its master, the bundled clients) trusts and,
/// when an identity is configured, presents if the server asks for a certificate.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let Some(trust) = &settings.trust else {
        return Err(TlsError::Missing(
            "a TLS client verifies the server's certificate: configure a trustStore or tlsTrustedCa",
        ));
    };
    let roots = load_trust(trust)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match &settings.identity {
        Some(identity) => {
            let identity = load_identity(identity)?;
            builder.with_client_auth_cert(identity.chain, identity.key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name a client checks the server's certificate against: the host as written in
/// the URI (a DNS name, or an IP address matched against the certificate's IP SANs).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::ServerName(host.to_owned()))
}

fn load_identity(identity: &TlsIdentity) -> Result<Identity, TlsError> {
    let (identity, path) = match identity {
        TlsIdentity::Pem {
            certificate,
            private_key,
        } => {
            let chain = read_pem_certificates(certificate)?;
            let key = PrivateKeyDer::from_pem_file(private_key).map_err(|e| {
                file_error(
                    private_key,
                    format!("no usable private key: {}", pem_reason(&e)),
                )
            })?;
            (Identity { chain, key }, certificate)
        }
        TlsIdentity::Pkcs12 {
            path,
            password,
            key_password,
        } => {
            let store = read_pkcs12(path, &password.0, Pkcs12Use::KeyStore)?;
            let Some((alias, entry)) = store.private_key_chain() else {
                return Err(file_error(path, "the key store holds no private key entry"));
            };
            if key_password.as_ref().is_some_and(|k| k.0 != password.0) {
                // PKCS12 keeps one password for the store and its keys in practice
                // (keytool refuses a different one); a differing keyStoreKeyPassword is
                // a configuration mistake worth naming rather than a silent success.
                return Err(file_error(
                    path,
                    "keyStoreKeyPassword differs from keyStorePassword; a PKCS12 store has one password",
                ));
            }
            let chain: Vec<CertificateDer<'static>> = entry
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect();
            if chain.is_empty() {
                return Err(file_error(
                    path,
                    format!("key entry \"{alias}\" has no certificate"),
                ));
            }
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(entry.key().as_der().to_vec()));
            (Identity { chain, key }, path)
        }
    };
    // keytool's EC keys lack their public key (see "EC keys without their public key").
    let identity = match identity.key {
        PrivateKeyDer::Pkcs8(key) => Identity {
            key: PrivateKeyDer::Pkcs8(
                with_ec_public_key(key.secret_pkcs8_der(), &identity.chain[0]).into(),
            ),
            chain: identity.chain,
        },
        _ => identity,
    };
    check_validity(path, &identity.chain[0])?;
    // A key that is not the certificate's is otherwise found only by the first client.
    rustls::sign::CertifiedKey::from_der(
        identity.chain.clone(),
        identity.key.clone_key(),
        &provider(),
    )
    .map_err(|e| {
        file_error(
            path,
            format!(
                "the private key cannot be used with this certificate (not its key, or a \
                 kind of key this broker cannot use): {e}"
            ),
        )
    })?;
    Ok(identity)
}

fn load_trust(trust: &TlsTrust) -> Result<RootCertStore, TlsError> {
    let (certificates, path) = match trust {
        TlsTrust::Pem { ca } => (read_pem_certificates(ca)?, ca),
        TlsTrust::Pkcs12 { path, password } => {
            let store = read_pkcs12(path, &password.0, Pkcs12Use::TrustStore)?;
            let mut certificates = Vec::new();
            for (_, entry) in store.entries() {
                match entry {
                    p12_keystore::KeyStoreEntry::Certificate(c) => {
                        certificates.push(CertificateDer::from(c.as_der().to_vec()))
                    }
                    // Read raw, a key's certificates are entries of their own (a key
                    // store used as a trust store trusts them); a linked chain, should
                    // one appear, counts by its top.
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                        if let Some(last) = chain.certs().last() {
                            certificates.push(CertificateDer::from(last.as_der().to_vec()))
                        }
                    }
                    p12_keystore::KeyStoreEntry::Secret(_) => {}
                }
            }
            (certificates, path)
        }
    };
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| file_error(path, format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(file_error(path, "holds no certificate to trust"));
    }
    Ok(roots)
}

fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, pem_reason(&e)))?;
    let certificates = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, pem_reason(&e)))?;
    if certificates.is_empty() {
        return Err(file_error(
            path,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
        ));
    }
    Ok(certificates)
}

/// How a PKCS12 file is read.
#[derive(Clone, Copy)]
enum Pkcs12Use {
    /// Keys linked with their certificate chains.
    KeyStore,
    /// Every certificate on its own, whether or not keytool marked it trusted: a
    /// trust store made by `openssl pkcs12 -export -nokeys` carries no such mark, and
    /// the operator named the file as what to trust.
    TrustStore,
}

fn read_pkcs12(
    path: &Path,
    password: &str,
    usage: Pkcs12Use,
) -> Result<p12_keystore::KeyStore, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e.to_string()))?;
    if bytes.starts_with(&[0xFE, 0xED, 0xFE, 0xED]) || bytes.starts_with(&[0xCE, 0xCE, 0xCE, 0xCE])
    {
        return Err(file_error(
            path,
            "a JKS/JCEKS store; convert it: keytool -importkeystore -srckeystore FILE -srcstoretype JKS -destkeystore FILE.p12 -deststoretype PKCS12",
        ));
    }
    let policy = match usage {
        Pkcs12Use::KeyStore => p12_keystore::Pkcs12ImportPolicy::Relaxed,
        Pkcs12Use::TrustStore => p12_keystore::Pkcs12ImportPolicy::Raw,
    };
    p12_keystore::KeyStore::from_pkcs12(&bytes, password, policy).map_err(|e| {
        file_error(
            path,
            format!("cannot open the PKCS12 store (wrong password, or not PKCS12): {e}"),
        )
    })
}

fn pem_reason(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(e) => e.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "nothing of the expected kind in it".into(),
        other => format!("not valid PEM: {other:?}"),
    }
}

/// Refuses a leaf certificate that is expired or not yet valid: a broker that starts
/// with one serves no TLS client at all.
fn check_validity(path: &Path, leaf: &CertificateDer<'_>) -> Result<(), TlsError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| file_error(path, format!("the certificate does not parse: {e}")))?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let validity = certificate.validity();
    if now > validity.not_after.timestamp() {
        return Err(file_error(
            path,
            format!("the certificate expired on {}", validity.not_after),
        ));
    }
    if now < validity.not_before.timestamp() {
        return Err(file_error(
            path,
            format!(
                "the certificate is not valid before {}",
                validity.not_before
            ),
        ));
    }
    Ok(())
}

// ---- EC keys without their public key --------------------------------------------
//
// The JDK's keytool writes an EC private key as PKCS#8 whose inner ECPrivateKey holds
// only the version and the secret; ring (rustls's provider here) refuses such a key,
// it wants the optional public key too. The public key is the certificate's, so it is
// put back before the key is used. The layouts (DER, RFC 5208 and RFC 5915):
//
//   PrivateKeyInfo ::= SEQUENCE {                       -- tag 0x30
//       version INTEGER, algorithm AlgorithmIdentifier,  -- 0x02, 0x30
//       privateKey OCTET STRING (an ECPrivateKey),       -- 0x04
//       attributes [0] ... OPTIONAL }                    -- 0xA0, kept as is
//   ECPrivateKey ::= SEQUENCE {                          -- 0x30
//       version INTEGER (1), privateKey OCTET STRING,    -- 0x02, 0x04
//       parameters [0] EXPLICIT ECParameters OPTIONAL,   -- 0xA0
//       publicKey  [1] EXPLICIT BIT STRING OPTIONAL }    -- 0xA1 { 0x03 len 0x00 point }
//
// Anything else (RSA, Ed25519, an EC key that has its public key, bytes that do not
// parse) is returned unchanged, and rustls then says what it thinks of it.

/// `pkcs8` with the ECPrivateKey's public key filled in from `certificate` when it is
/// an EC key without one; otherwise `pkcs8` unchanged.
fn with_ec_public_key(pkcs8: &[u8], certificate: &CertificateDer<'_>) -> Vec<u8> {
    ec_key_with_public_key(pkcs8, certificate).unwrap_or_else(|| pkcs8.to_vec())
}

fn ec_key_with_public_key(pkcs8: &[u8], certificate: &CertificateDer<'_>) -> Option<Vec<u8>> {
    const SEQUENCE: u8 = 0x30;
    const OCTET_STRING: u8 = 0x04;
    const BIT_STRING: u8 = 0x03;
    const PUBLIC_KEY: u8 = 0xA1;
    let (tag, body, rest) = der_tlv(pkcs8)?;
    if tag != SEQUENCE || !rest.is_empty() {
        return None;
    }
    let outer = der_children(body)?;
    let (key_index, inner) = outer
        .iter()
        .enumerate()
        .find(|(_, (tag, _))| *tag == OCTET_STRING)
        .map(|(i, (_, value))| (i, *value))?;
    let (tag, ec_body, rest) = der_tlv(inner)?;
    if tag != SEQUENCE || !rest.is_empty() {
        return None;
    }
    let ec = der_children(ec_body)?;
    // An ECPrivateKey: INTEGER 1, then the secret; nothing to do if it has its key.
    if ec.len() < 2 || ec[0] != (0x02, &[1u8][..]) || ec[1].0 != OCTET_STRING {
        return None;
    }
    if ec.iter().any(|(tag, _)| *tag == PUBLIC_KEY) {
        return None;
    }
    let (_, cert) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let spki = &cert.public_key().subject_public_key;
    if spki.unused_bits != 0 {
        return None;
    }
    let mut bits = vec![0u8];
    bits.extend_from_slice(&spki.data);
    let mut ec_out = Vec::new();
    for (tag, value) in &ec {
        ec_out.extend(der_encode(*tag, value));
    }
    ec_out.extend(der_encode(PUBLIC_KEY, &der_encode(BIT_STRING, &bits)));
    let ec_out = der_encode(SEQUENCE, &ec_out);
    let mut out = Vec::new();
    for (i, (tag, value)) in outer.iter().enumerate() {
        if i == key_index {
            out.extend(der_encode(OCTET_STRING, &ec_out));
        } else {
            out.extend(der_encode(*tag, value));
        }
    }
    Some(der_encode(SEQUENCE, &out))
}

/// One DER element: (tag, value, what follows). Single-byte tags and definite lengths
/// only (all these structures use).
fn der_tlv(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn der_children(mut body: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let (tag, value, rest) = der_tlv(body)?;
        out.push((tag, value));
        body = rest;
    }
    Some(out)
}

fn der_encode(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
