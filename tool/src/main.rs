//! `rserpool`: the project's command-line tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod common;
mod decode;
mod handlespace;
mod loadgen;
mod pe;
mod resolve;
mod terminal;

/// RSerPool (RFC 5351-5356) tools.
#[derive(Parser)]
#[command(name = "rserpool", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode ASAP/ENRP messages given as hex or found in a pcap/pcapng capture.
    Decode(decode::Args),
    /// Show a registrar's handlespace: its peers, pools, PEs, their homes and the owners'
    /// checksums (like RSPLIB's hsdump), by posing as an ENRP peer for one exchange.
    Handlespace(handlespace::HandlespaceArgs),
    /// Generate ASAP load against a registrar: registrations/s and handle resolutions/s from
    /// many concurrent clients.
    ///
    /// Every client has its own transport endpoint (its own UDP port, chosen by the system, no
    /// host port sharing: --no-share-host is implied) and its own association to the
    /// registrar, whose UDP encapsulation port --udp-port gives (9899). Name the registrar
    /// with --registrar and use --announce off. --t1 bounds every request (registrations and
    /// deregistrations too); a request unanswered in time counts as an error at once.
    Loadgen(loadgen::LoadgenArgs),
    /// Run a demo pool element (echo, discard, daytime, chargen) registered with a registrar.
    Pe(pe::PeArgs),
    /// Resolve a pool handle to pool elements through a registrar.
    Resolve(resolve::ResolveArgs),
    /// Connect standard input and output to a pool (like RSPLIB's rspterminal).
    Terminal(terminal::TerminalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode(a) => decode::run(a),
        Command::Handlespace(a) => handlespace::run(a),
        Command::Loadgen(a) => loadgen::run(a),
        Command::Pe(a) => pe::run(a),
        Command::Resolve(a) => resolve::run(a),
        Command::Terminal(a) => terminal::run(a),
    }
}
