//! `tandem-load`: the bundled load tool. Layers: `cli` (flags -> `Settings`),
//! `transport` (the wire protocol behind a trait), `workload` (threads, pacing,
//! measuring), `check` (lost / duplicate / order), `report` (text, JSON, HDR log);
//! `plot` (the `tandem-load plot` subcommand: latency curves from HDR logs as SVG).

mod check;
mod cli;
mod error;
mod plot;
mod report;
mod transport;
mod workload;

use std::process::ExitCode;

use clap::Parser;

use cli::{Args, Protocol, Settings};
use error::LoadError;

/// Exit status when the run was made but lost or duplicated messages.
const CHECK_FAILED: u8 = 2;

fn main() -> ExitCode {
    // `tandem-load plot ...`: latency curves from `--hdr` logs (see `plot`).
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("plot") {
        return ExitCode::from(plot::main(&argv[2..]));
    }
    let settings = match Settings::from_args(Args::parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tandem-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&settings) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(CHECK_FAILED),
        Err(e) => {
            eprintln!("tandem-load: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs, reports; Ok(false) if the check failed.
fn run(s: &Settings) -> Result<bool, LoadError> {
    let result = match s.protocol {
        Protocol::Stomp => workload::run::<transport::stomp::Stomp>(s)?,
        Protocol::Openwire => workload::run::<transport::openwire::OpenWire>(s)?,
    };
    let (rep, hists) = report::build(s, &result);
    if let Some(path) = &s.json {
        report::write_json(&rep, path)?;
    }
    if let Some(path) = &s.hdr {
        report::write_hdr(&rep, &hists, s.warmup(), path)?;
    }
    if !s.quiet {
        let mut out = std::io::stdout().lock();
        // A closed stdout (piped into `head`) is not a failed run.
        let _ = report::print_text(&rep, &mut out);
    }
    if !rep.check.passed() {
        eprintln!(
            "tandem-load: CHECK FAILED: {} lost, {} unflagged duplicates",
            rep.check.lost, rep.check.duplicates
        );
    }
    Ok(rep.check.passed())
}
