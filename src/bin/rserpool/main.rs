//! `rserpool`: the project's command-line tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod common;
mod decode;
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
        Command::Pe(a) => pe::run(a),
        Command::Resolve(a) => resolve::run(a),
        Command::Terminal(a) => terminal::run(a),
    }
}
