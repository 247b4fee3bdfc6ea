//! `LoadError`: why a run could not be made (exit status 1). A run that was made but
//! found lost or duplicated messages is not an error: its report says so (exit 2).

use std::path::PathBuf;

use crate::transport::TransportError;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Flags that parse but do not make a run.
    #[error("{0}")]
    Usage(String),
    /// `--ca-file`, `--cert-file` or `--key-file` cannot be used (names the file).
    #[error("TLS: {0}")]
    Tls(String),
    /// Connecting or subscribing failed before the run started.
    #[error("{what}: {source}")]
    Setup {
        what: String,
        #[source]
        source: TransportError,
    },
    /// Writing a report file.
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A worker thread could not be spawned or panicked.
    #[error("worker thread: {0}")]
    Thread(String),
}
