//! Throw-away TLS material for the TLS tests (`tests/tls.rs`), made the way README
//! "TLS" tells an operator to: `openssl` and the JDK's `keytool`, run as processes with
//! the README's own arguments (each bounded by [`TOOL_TIMEOUT`]).
//!
//! * [`material`] — made once per test process (the first caller waits) into
//!   `CARGO_TARGET_TMPDIR/tls-material-<pid>`; what earlier processes left there is
//!   removed first. [`Material::path`] names a file in it.
//! * [`sslcontext_xml`], [`pem_tandem_attrs`] — the broker's side of it: an
//!   `<sslContext>` element, or `<tandem tlsCertificate tlsPrivateKey tlsTrustedCa>`.
//! * [`jvm_trust`], [`jvm_identity`] — a JMS client's side: the JVM's standard
//!   `javax.net.ssl.*` properties.
//! * [`StompOverTls`] — `openssl s_client` as a STOMP client: a real TLS client this
//!   project did not write, fed frames on its stdin, its stdout read as it comes.
//!
//! Files (every store's password is [`PASSWORD`]):
//!
//! | file | what |
//! |---|---|
//! | `ca.pem`, `ca.key` | the test CA |
//! | `broker.pem`, `broker.key`, `broker.p12` | the broker, signed by the CA, SAN `DNS:localhost,IP:127.0.0.1` |
//! | `trust.p12` | the CA, for brokers (client auth, a slave) and JMS clients |
//! | `app.pem`, `app.key`, `app.p12` | a client certificate signed by the CA (`clientAuth`) |
//! | `foreign-ca.pem`, `foreign-trust.p12` | a second CA, unrelated to the first |
//! | `foreign-app.pem`, `foreign-app.key`, `foreign-app.p12` | a client certificate signed by the foreign CA |
//! | `foreign-broker.p12` | a broker identity signed by the foreign CA |
//! | `localhost-only.pem`, `localhost-only.p12` | a broker signed by the CA, SAN `DNS:localhost` only |
//! | `keytool-rsa.p12`, `keytool-rsa-trust.p12` | `keytool -genkeypair -storetype PKCS12 -keyalg RSA`, self-signed; its certificate in a trust store |
//! | `keytool-ec.p12`, `keytool-ec-trust.p12` | the same with `-keyalg EC` |
//! | `broker.jks` | `keytool -genkeypair -storetype JKS` (refused by the broker) |

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{poll_until, run_bounded};

/// The password of every store made here (the README's).
pub const PASSWORD: &str = "changeit";
/// Bound on one `openssl` or `keytool` run.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The directory the files are in.
pub struct Material {
    dir: PathBuf,
}

impl Material {
    /// `name` in the material's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// [`Material::path`] as a string, for XML and command lines.
    pub fn file(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

static MATERIAL: OnceLock<Result<Material, String>> = OnceLock::new();

/// The material of this test process, made on first use.
pub fn material() -> &'static Material {
    let made = MATERIAL.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale(root);
        let dir = root.join(format!("tls-material-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let started = Instant::now();
        make_all(&dir)?;
        eprintln!(
            "tls: CA and stores made in {} ms in {}",
            started.elapsed().as_millis(),
            dir.display()
        );
        Ok(Material { dir })
    });
    match made {
        Ok(m) => m,
        Err(e) => panic!("cannot make the TLS test material: {e}"),
    }
}

/// Removes `tls-material-<pid>` directories of processes that are gone.
fn remove_stale(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("tls-material-") else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Runs `program args` in `dir`, bounded; Err with its output unless it exits 0.
fn run(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir);
    let (status, out, err) = run_bounded(&mut cmd, TOOL_TIMEOUT)?;
    if !status.success() {
        return Err(format!(
            "{program} {}: {status}\n{out}\n{err}",
            args.join(" ")
        ));
    }
    Ok(())
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    run(dir, "openssl", args)
}

fn keytool(dir: &Path, args: &[&str]) -> Result<(), String> {
    run(dir, "keytool", args)
}

/// `keytool -importcert`: the PEM certificate `pem` into the PKCS12 trust store
/// `store` under `alias` (README "Making a test CA and stores").
fn import_trusted(dir: &Path, alias: &str, pem: &str, store: &str) -> Result<(), String> {
    keytool(
        dir,
        &[
            "-importcert",
            "-noprompt",
            "-alias",
            alias,
            "-file",
            pem,
            "-keystore",
            store,
            "-storetype",
            "PKCS12",
            "-storepass",
            PASSWORD,
        ],
    )
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    fs::write(dir.join(name), text).map_err(|e| format!("write {name}: {e}"))
}

/// README "Making a test CA and stores": a CA (`<prefix>ca.pem`/`.key`) and the trust
/// store with it (`<prefix>trust.p12`).
fn make_ca(dir: &Path, prefix: &str, cn: &str) -> Result<(), String> {
    let key = format!("{prefix}ca.key");
    let pem = format!("{prefix}ca.pem");
    let subj = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj", &subj,
            "-keyout", &key, "-out", &pem,
        ],
    )?;
    let trust = format!("{prefix}trust.p12");
    import_trusted(dir, "ca", &pem, &trust)
}

/// README "Making a test CA and stores": a key and certificate `<name>.key`/`.pem`
/// signed by the CA `<ca>ca.pem` with the extensions `ext` (one line, as the README's
/// `san.ext`/`client.ext`), and `<name>.p12` (with the CA certificate when
/// `with_ca`, as the broker's store is made).
fn make_signed(dir: &Path, ca: &str, name: &str, ext: &str, with_ca: bool) -> Result<(), String> {
    let (key, csr, pem, p12) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.p12"),
    );
    let ext_file = format!("{name}.ext");
    let (ca_pem, ca_key) = (format!("{ca}ca.pem"), format!("{ca}ca.key"));
    let subj = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", &subj, "-keyout", &key, "-out", &csr,
        ],
    )?;
    write(dir, &ext_file, &format!("{ext}\n"))?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "365",
            "-extfile",
            &ext_file,
            "-out",
            &pem,
        ],
    )?;
    let pass = format!("pass:{PASSWORD}");
    let mut args = vec![
        "pkcs12", "-export", "-in", &pem, "-inkey", &key, "-name", name, "-out", &p12, "-passout",
        &pass,
    ];
    if with_ca {
        args.extend_from_slice(&["-certfile", &ca_pem]);
    }
    openssl(dir, &args)
}

/// `keytool -genkeypair -storetype PKCS12` (README, after the openssl commands): a
/// self-signed `<name>.p12` for localhost and 127.0.0.1, its certificate exported
/// (`-exportcert -rfc`) into `<name>-trust.p12`.
fn make_keytool_store(dir: &Path, name: &str, keyalg: &str) -> Result<(), String> {
    let (p12, pem, trust) = (
        format!("{name}.p12"),
        format!("{name}.pem"),
        format!("{name}-trust.p12"),
    );
    keytool(
        dir,
        &[
            "-genkeypair",
            "-storetype",
            "PKCS12",
            "-keyalg",
            keyalg,
            "-alias",
            "broker",
            "-dname",
            "CN=localhost",
            "-validity",
            "365",
            "-ext",
            "SAN=dns:localhost,ip:127.0.0.1",
            "-keystore",
            &p12,
            "-storepass",
            PASSWORD,
        ],
    )?;
    keytool(
        dir,
        &[
            "-exportcert",
            "-rfc",
            "-alias",
            "broker",
            "-keystore",
            &p12,
            "-storepass",
            PASSWORD,
            "-file",
            &pem,
        ],
    )?;
    import_trusted(dir, "broker", &pem, &trust)
}

fn make_all(dir: &Path) -> Result<(), String> {
    const SERVER: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1";
    const CLIENT: &str = "extendedKeyUsage=clientAuth";
    make_ca(dir, "", "Tandem test CA")?;
    make_signed(dir, "", "broker", SERVER, true)?;
    make_signed(dir, "", "app", CLIENT, false)?;
    make_signed(
        dir,
        "",
        "localhost-only",
        "subjectAltName=DNS:localhost",
        true,
    )?;
    make_ca(dir, "foreign-", "Foreign test CA")?;
    make_signed(dir, "foreign-", "foreign-app", CLIENT, false)?;
    make_signed(dir, "foreign-", "foreign-broker", SERVER, true)?;
    make_keytool_store(dir, "keytool-rsa", "RSA")?;
    make_keytool_store(dir, "keytool-ec", "EC")?;
    keytool(
        dir,
        &[
            "-genkeypair",
            "-storetype",
            "JKS",
            "-keyalg",
            "RSA",
            "-alias",
            "broker",
            "-dname",
            "CN=localhost",
            "-validity",
            "365",
            "-keystore",
            "broker.jks",
            "-storepass",
            PASSWORD,
        ],
    )
}

// ---------------------------------------------------------------------------------
// The broker's and the clients' settings

/// `<sslContext><sslContext keyStore keyStorePassword [trustStore
/// trustStorePassword]/></sslContext>` for the stores `key_store` and `trust_store`
/// (paths), both with [`PASSWORD`].
pub fn sslcontext_xml(key_store: &Path, trust_store: Option<&Path>) -> String {
    sslcontext_xml_with(key_store, PASSWORD, trust_store)
}

/// [`sslcontext_xml`] with `key_password` as `keyStorePassword`.
pub fn sslcontext_xml_with(
    key_store: &Path,
    key_password: &str,
    trust_store: Option<&Path>,
) -> String {
    let trust = trust_store.map_or(String::new(), |t| {
        format!(
            r#" trustStore="{}" trustStorePassword="{PASSWORD}""#,
            t.display()
        )
    });
    format!(
        "  <sslContext>\n    <sslContext keyStore=\"{}\" keyStorePassword=\"{key_password}\"{trust}/>\n  </sslContext>\n",
        key_store.display()
    )
}

/// `tlsCertificate tlsPrivateKey [tlsTrustedCa]` attributes of `<tandem>` (PEM files).
pub fn pem_tandem_attrs(certificate: &Path, key: &Path, ca: Option<&Path>) -> String {
    let ca = ca.map_or(String::new(), |c| {
        format!(r#" tlsTrustedCa="{}""#, c.display())
    });
    format!(
        r#"tlsCertificate="{}" tlsPrivateKey="{}"{ca}"#,
        certificate.display(),
        key.display()
    )
}

/// The JVM options that make a JMS client trust what `trust_store` holds.
pub fn jvm_trust(trust_store: &Path) -> Vec<String> {
    vec![
        format!("-Djavax.net.ssl.trustStore={}", trust_store.display()),
        format!("-Djavax.net.ssl.trustStorePassword={PASSWORD}"),
    ]
}

/// [`jvm_trust`] plus the key store a JMS client presents when asked (mutual TLS).
pub fn jvm_identity(trust_store: &Path, key_store: &Path) -> Vec<String> {
    let mut v = jvm_trust(trust_store);
    v.push(format!("-Djavax.net.ssl.keyStore={}", key_store.display()));
    v.push(format!("-Djavax.net.ssl.keyStorePassword={PASSWORD}"));
    v
}

// ---------------------------------------------------------------------------------
// A STOMP client over TLS: `openssl s_client`

/// `openssl s_client -quiet` connected to 127.0.0.1:`port`, checking the broker's
/// certificate against a CA file and a name: what is written to it goes to the broker
/// encrypted, what the broker answers is collected from its stdout. Killed on drop.
pub struct StompOverTls {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Everything read from its stdout so far.
    out: Arc<Mutex<Vec<u8>>>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
    what: String,
}

impl StompOverTls {
    /// Starts `openssl s_client` to 127.0.0.1:`port`, verifying the certificate against
    /// `ca_file` and IP 127.0.0.1 (a failed check ends the handshake:
    /// `-verify_return_error`); `extra`: more options (e.g. `-cert`/`-key`).
    pub fn connect(port: u16, ca_file: &Path, extra: &[&OsStr]) -> StompOverTls {
        let mut cmd = Command::new("openssl");
        cmd.arg("s_client")
            .arg("-quiet")
            .arg("-verify_return_error")
            .arg("-connect")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-CAfile")
            .arg(ca_file)
            .arg("-verify_ip")
            .arg("127.0.0.1")
            .args(extra);
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let out: Arc<Mutex<Vec<u8>>> = Arc::default();
        let mut stdout = child.stdout.take().unwrap();
        let out2 = out.clone();
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match stdout.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out2.lock().unwrap().extend_from_slice(&chunk[..n]),
                }
            }
        });
        StompOverTls {
            stdin: child.stdin.take(),
            stderr: Some(super::read_all(child.stderr.take().unwrap())),
            child,
            out,
            stdout: Some(reader),
            what,
        }
    }

    /// Writes `bytes` (frames, as [`super::encode`] makes them); panics if s_client
    /// has gone.
    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.try_send(bytes) {
            let stderr = self.finish();
            panic!("{}: write: {e}; stderr:\n{stderr}", self.what);
        }
    }

    /// Writes `bytes`; an error if s_client has gone (e.g. after a refused handshake).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or(std::io::ErrorKind::BrokenPipe)?;
        stdin.write_all(bytes)?;
        stdin.flush()
    }

    /// What the broker sent so far, as text (frames end with NUL; shown as `^@`).
    pub fn received(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).replace('\0', "^@")
    }

    /// Waits (bounded) until what was received contains `needle`; panics with what
    /// was received and s_client's stderr otherwise.
    #[track_caller]
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) {
        if poll_until(timeout, || self.received().contains(needle)) {
            return;
        }
        let received = self.received();
        let stderr = self.finish();
        panic!(
            "{}: no {needle:?} within {timeout:?}; received:\n{received}\nstderr:\n{stderr}",
            self.what
        );
    }

    /// Waits (bounded) for s_client to exit (the broker closed the connection);
    /// returns its stderr (certificate checks, alerts). Kills it after 20 s.
    pub fn finish(&mut self) -> String {
        drop(self.stdin.take());
        let exited = poll_until(Duration::from_secs(20), || {
            self.child.try_wait().ok().flatten().is_some()
        });
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(h) = self.stdout.take() {
            let _ = h.join();
        }
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for StompOverTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
