//! `tandem`: run a broker from an `activemq.xml`-style configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Tandem: an ActiveMQ-compatible message broker (STOMP today; OpenWire and the
/// master/slave pair arrive in later releases).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// The broker configuration, in ActiveMQ's activemq.xml vocabulary
    /// (see config/broker.xml and the README's configuration reference).
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    /// Overrides the configuration's data directory (<broker dataDirectory>): where
    /// the journal and the lock file live. A relative kahaDB directory is resolved
    /// under it.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Start even though the journal is damaged (a checksum failure or zeros with
    /// valid records after them): the damaged ranges are skipped and logged, every
    /// other record is kept. What the damaged bytes held is lost. Without it, a
    /// damaged journal stops start-up with an error naming the damage.
    #[arg(long)]
    skip_damaged_records: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = match tandem::config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(dir) = cli.data_dir {
        config.override_data_dir(dir);
    }
    config.journal.skip_damaged_records = cli.skip_damaged_records;
    match tandem::node::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tandem: {e}");
            ExitCode::FAILURE
        }
    }
}
