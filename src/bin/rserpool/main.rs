//! `rserpool`: the project's command-line tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod decode;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode(a) => decode::run(a),
    }
}
