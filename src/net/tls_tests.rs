//! Loading TLS material: what works, and that each kind of bad file is refused with
//! an error naming it. Certificates are made here with rcgen; PKCS12 stores with
//! p12-keystore's writer (the JDK's keytool stores are covered by tests/tls.rs).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use super::*;
use crate::config::Secret;

struct Made {
    dir: tempfile::TempDir,
}

impl Made {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A CA, a server certificate for localhost signed by it (valid `from`..`to` years),
/// and a second, unrelated key.
fn make(valid_years: (i32, i32)) -> Made {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("params");
    params.not_before = rcgen::date_time_ymd(valid_years.0, 1, 1);
    params.not_after = rcgen::date_time_ymd(valid_years.1, 1, 1);
    let cert = params.signed_by(&key, &issuer).expect("cert");
    let other = KeyPair::generate().expect("other key");
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.path().join("server.pem"), cert.pem()).expect("write");
    std::fs::write(dir.path().join("server.key"), key.serialize_pem()).expect("write");
    std::fs::write(dir.path().join("other.key"), other.serialize_pem()).expect("write");
    // The same identity as a PKCS12 key store, and the CA as a trust store.
    let mut store = p12_keystore::KeyStore::new();
    let chain = p12_keystore::PrivateKeyChain::new(
        b"id".to_vec(),
        p12_keystore::PrivateKey::from_der(&key.serialize_der()).expect("key der"),
        vec![p12_keystore::Certificate::from_der(cert.der()).expect("cert der")],
    );
    store.add_entry(
        "broker",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    let bytes = store.writer("secret").write().expect("pkcs12");
    std::fs::write(dir.path().join("broker.p12"), bytes).expect("write");
    let mut trust = p12_keystore::KeyStore::new();
    trust.add_entry(
        "ca",
        p12_keystore::KeyStoreEntry::Certificate(
            p12_keystore::Certificate::from_der(ca.der()).expect("ca der"),
        ),
    );
    let bytes = trust.writer("trustpw").write().expect("pkcs12");
    std::fs::write(dir.path().join("trust.p12"), bytes).expect("write");
    Made { dir }
}

fn pem(m: &Made, key: &str) -> TlsSettings {
    TlsSettings {
        identity: Some(TlsIdentity::Pem {
            certificate: m.path("server.pem"),
            private_key: m.path(key),
        }),
        trust: Some(TlsTrust::Pem {
            ca: m.path("ca.pem"),
        }),
    }
}

fn p12(m: &Made, password: &str) -> TlsSettings {
    TlsSettings {
        identity: Some(TlsIdentity::Pkcs12 {
            path: m.path("broker.p12"),
            password: Secret(password.into()),
            key_password: None,
        }),
        trust: Some(TlsTrust::Pkcs12 {
            path: m.path("trust.p12"),
            password: Secret("trustpw".into()),
        }),
    }
}

fn names(e: &TlsError, file: &Path) -> bool {
    e.to_string().contains(&file.display().to_string())
}

#[test]
fn pem_and_pkcs12_material_make_server_and_client_configs() {
    let m = make((2020, 2090));
    for settings in [pem(&m, "server.key"), p12(&m, "secret")] {
        for auth in [ClientAuth::None, ClientAuth::Want, ClientAuth::Need] {
            server_config(&settings, auth).expect("server config");
        }
        client_config(&settings).expect("client config");
    }
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_naming_the_file() {
    let m = make((2020, 2090));
    let e = server_config(&pem(&m, "other.key"), ClientAuth::None).expect_err("mismatch");
    assert!(names(&e, &m.path("server.pem")), "{e}");
    assert!(
        e.to_string()
            .contains("cannot be used with this certificate"),
        "{e}"
    );
}

#[test]
fn an_expired_or_not_yet_valid_certificate_is_refused() {
    let m = make((2010, 2020));
    let e = server_config(&pem(&m, "server.key"), ClientAuth::None).expect_err("expired");
    assert!(e.to_string().contains("expired"), "{e}");
    assert!(names(&e, &m.path("server.pem")), "{e}");
    let m = make((2090, 2095));
    let e = server_config(&p12(&m, "secret"), ClientAuth::None).expect_err("future");
    assert!(e.to_string().contains("not valid before"), "{e}");
}

#[test]
fn a_wrong_store_password_is_refused_naming_the_store() {
    let m = make((2020, 2090));
    let e = server_config(&p12(&m, "wrong"), ClientAuth::None).expect_err("password");
    assert!(names(&e, &m.path("broker.p12")), "{e}");
    assert!(e.to_string().contains("wrong password"), "{e}");
}

#[test]
fn missing_garbage_and_jks_files_are_refused_naming_them() {
    let m = make((2020, 2090));
    let mut settings = pem(&m, "server.key");
    settings.identity = Some(TlsIdentity::Pem {
        certificate: m.path("absent.pem"),
        private_key: m.path("server.key"),
    });
    let e = server_config(&settings, ClientAuth::None).expect_err("absent");
    assert!(names(&e, &m.path("absent.pem")), "{e}");

    std::fs::write(m.path("garbage.pem"), b"not a certificate at all\n").expect("write");
    settings.trust = Some(TlsTrust::Pem {
        ca: m.path("garbage.pem"),
    });
    let e = client_config(&settings).expect_err("garbage");
    assert!(names(&e, &m.path("garbage.pem")), "{e}");

    std::fs::write(m.path("broker.jks"), [0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2]).expect("write");
    let settings = TlsSettings {
        identity: Some(TlsIdentity::Pkcs12 {
            path: m.path("broker.jks"),
            password: Secret("secret".into()),
            key_password: None,
        }),
        trust: None,
    };
    let e = server_config(&settings, ClientAuth::None).expect_err("jks");
    assert!(names(&e, &m.path("broker.jks")), "{e}");
    assert!(e.to_string().contains("keytool -importkeystore"), "{e}");
}

#[test]
fn client_auth_and_clients_need_trust() {
    let m = make((2020, 2090));
    let mut settings = pem(&m, "server.key");
    settings.trust = None;
    server_config(&settings, ClientAuth::None).expect("no client auth needs no trust");
    assert!(matches!(
        server_config(&settings, ClientAuth::Need),
        Err(TlsError::Missing(_))
    ));
    assert!(matches!(
        client_config(&settings),
        Err(TlsError::Missing(_))
    ));
}

#[test]
fn server_names_are_dns_names_or_ip_addresses() {
    assert!(server_name("localhost").is_ok());
    assert!(server_name("127.0.0.1").is_ok());
    assert!(server_name("::1").is_ok());
    assert!(server_name("bad name!").is_err());
}

/// An EC key as the JDK's keytool writes it (PKCS#8 without the public key inside the
/// ECPrivateKey) is completed from the certificate and serves.
#[test]
fn an_ec_key_without_its_public_key_is_completed_from_the_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ec key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let full = key.serialize_der();
    let stripped = strip_ec_public_key(&full);
    assert!(
        stripped.len() < full.len(),
        "the test key had no public key to strip"
    );
    let mut store = p12_keystore::KeyStore::new();
    let chain = p12_keystore::PrivateKeyChain::new(
        b"id".to_vec(),
        p12_keystore::PrivateKey::from_der(&stripped).expect("key der"),
        vec![p12_keystore::Certificate::from_der(cert.der()).expect("cert der")],
    );
    store.add_entry("ec", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    let path = dir.path().join("ec.p12");
    std::fs::write(&path, store.writer("pw").write().expect("pkcs12")).expect("write");
    let settings = TlsSettings {
        identity: Some(TlsIdentity::Pkcs12 {
            path,
            password: Secret("pw".into()),
            key_password: None,
        }),
        trust: None,
    };
    server_config(&settings, ClientAuth::None).expect("the completed EC key serves");
    // What was put back is exactly what was taken out; a complete key is left alone.
    let der = CertificateDer::from(cert.der().to_vec());
    assert_eq!(with_ec_public_key(&stripped, &der), full);
    assert_eq!(with_ec_public_key(&full, &der), full);
}

/// The ECPrivateKey inside `pkcs8` without its `[1] publicKey`.
fn strip_ec_public_key(pkcs8: &[u8]) -> Vec<u8> {
    let (_, body, _) = der_tlv(pkcs8).expect("outer");
    let mut out = Vec::new();
    for (tag, value) in der_children(body).expect("children") {
        if tag == 0x04 {
            let (_, ec, _) = der_tlv(value).expect("ec");
            let mut inner = Vec::new();
            for (t, v) in der_children(ec).expect("ec children") {
                if t != 0xA1 {
                    inner.extend(der_encode(t, v));
                }
            }
            out.extend(der_encode(0x04, &der_encode(0x30, &inner)));
        } else {
            out.extend(der_encode(tag, value));
        }
    }
    der_encode(0x30, &out)
}
