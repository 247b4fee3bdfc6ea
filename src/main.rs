//! `tandem`: run a broker from an `activemq.xml`-style configuration file, look at a
//! journal offline (`tandem journal verify|dump DIR`), or resend the messages of
//! diverged records set aside after a split brain (`tandem journal replay-diverged`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tandem: an ActiveMQ-compatible message broker (STOMP and OpenWire) with a
/// synchronous master/slave pair.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, subcommand_negates_reqs = true)]
struct Cli {
    /// The broker configuration, in ActiveMQ's activemq.xml vocabulary
    /// (see config/broker.xml and the README's configuration reference).
    #[arg(long, short, value_name = "FILE", required = true)]
    config: Option<PathBuf>,
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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Offline journal tools (read only; use on a stopped broker's directory).
    Journal {
        #[command(subcommand)]
        action: JournalAction,
    },
}

#[derive(Subcommand, Debug)]
enum JournalAction {
    /// Checks every segment's records and checksums; prints per shard the segments,
    /// records, first and last positions, how the log ends and any damaged range.
    /// Exit status 1 if a range is damaged.
    Verify {
        /// A data directory, its journal directory, or one shard's directory.
        dir: PathBuf,
    },
    /// Prints every record (position, length, what it is), then the same summary.
    Dump {
        /// A data directory, its journal directory, or one shard's directory.
        dir: PathBuf,
    },
    /// Resends to a running broker the messages of diverged records this node set
    /// aside when it rejoined a master after a split brain (shard-N/diverged-*/):
    /// those stored after the divergence and not removed since, each to its original
    /// destination, persistent, with the property TandemReplayedFrom=<original id>,
    /// each confirmed before the next. Records what was sent in the directory's
    /// REPLAYED file, so a second run sends nothing (unless --force). Never deletes
    /// anything. Exit status 1 if something is left to send, 2 on an error.
    ReplayDiverged {
        /// Set-aside directories (diverged-e<epoch>-<ms>), or a data, journal or
        /// shard directory holding some (the data directory replays every shard's).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// The broker: tcp://host:port (OpenWire: carries every JMS message as
        /// stored), stomp://host:port (text and bytes messages with string
        /// properties), or failover:(...) of either.
        #[arg(long, value_name = "URL")]
        url: String,
        /// Send again what an earlier run recorded as sent.
        #[arg(long)]
        force: bool,
        /// User name for a broker with simpleAuthenticationPlugin.
        #[arg(long)]
        user: Option<String>,
        /// Its password (also read from TANDEM_REPLAY_PASSWORD, which keeps it out of
        /// the process list).
        #[arg(long)]
        password: Option<String>,
    },
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
    if let Some(Command::Journal { action }) = cli.command {
        return journal(action);
    }
    let Some(config_path) = cli.config else {
        eprintln!("tandem: --config is required");
        return ExitCode::FAILURE;
    };
    let mut config = match tandem::config::load(&config_path) {
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
        Err(tandem::node::NodeError::Restart(reason)) => restart(&reason),
        Err(e) => {
            eprintln!("tandem: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The node stopped serving (a newer master serves, or it lost its witness lease):
/// start this program again with the same arguments, in the same process (same pid,
/// same log), so that discovery runs anew (and a stepped-down node rejoins as slave).
/// Every descriptor Tandem opens is close-on-exec.
fn restart(reason: &str) -> ExitCode {
    use std::os::unix::process::CommandExt;
    eprintln!("tandem: {reason}; starting again");
    let mut args = std::env::args_os();
    let program = args.next().unwrap_or_else(|| "tandem".into());
    let exe = std::env::current_exe().unwrap_or_else(|_| program.into());
    let err = std::process::Command::new(exe).args(args).exec();
    eprintln!("tandem: cannot start again ({err}); exiting: start it again to rejoin as slave");
    ExitCode::FAILURE
}

fn journal(action: JournalAction) -> ExitCode {
    use tandem::node::journal_tool;
    let mut out = std::io::stdout().lock();
    let result = match action {
        JournalAction::Verify { dir } => journal_tool::verify(&dir, &mut out),
        JournalAction::Dump { dir } => journal_tool::dump(&dir, &mut out),
        JournalAction::ReplayDiverged {
            dirs,
            url,
            force,
            user,
            password,
        } => {
            let opts = tandem::node::replay::ReplayOptions {
                dirs,
                url,
                force,
                user,
                password: password.or_else(|| std::env::var("TANDEM_REPLAY_PASSWORD").ok()),
            };
            return match tandem::node::replay::replay_diverged(&opts, &mut out) {
                Ok(s) if s.left > 0 => ExitCode::FAILURE,
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tandem journal replay-diverged: {e}");
                    ExitCode::from(2)
                }
            };
        }
    };
    match result {
        Ok(o) if o.damaged => ExitCode::FAILURE,
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tandem journal: {e}");
            ExitCode::from(2)
        }
    }
}
