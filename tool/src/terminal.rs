//! `rserpool terminal`: a pool user that connects standard input and output to a pool (like
//! RSPLIB's `rspterminal`), failing over to another PE when its PE goes away. It is a
//! [`Session`] in automatic failover mode; what it adds is sending again, after a failover,
//! the lines the lost PE had not answered (an echo's answer is as long as the line).

use std::collections::VecDeque;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use rserpool::session::{SendInfo, SessionConfig, SessionEvent};
use rserpool::wire::{PoolElementId, PoolHandle};
use rserpool::{Session, SessionOptions};
use tokio::sync::mpsc;

use super::common::{self, AsapArgs};

/// Connect standard input and output to a pool.
#[derive(Args, Debug)]
pub struct TerminalArgs {
    /// The pool handle.
    #[arg(default_value = "EchoPool", value_parser = common::parse_pool)]
    pool: PoolHandle,
    /// PPID of the messages sent.
    #[arg(long, default_value_t = 0)]
    ppid: u32,
    /// After the end of input, how long to wait for outstanding answers, ms.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    linger: u64,
    /// Most failovers before giving up.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_failovers: u32,
    /// How long to try to reach a PE before giving up, ms.
    #[arg(long, value_name = "MS", default_value_t = 15000)]
    connect_timeout: u64,
    /// Do not send again, after a failover, what the failed PE had not answered.
    #[arg(long)]
    no_resend: bool,
    #[command(flatten)]
    asap: AsapArgs,
}

pub fn run(args: TerminalArgs) -> ExitCode {
    args.asap.init_logging();
    let rt = match common::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rserpool terminal: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(terminal(args));
    // Standard input is read by a blocking thread that may still wait for a line.
    rt.shutdown_background();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rserpool terminal: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn terminal(args: TerminalArgs) -> Result<(), String> {
    let client = args.asap.start().await?;
    let (line_tx, mut lines) = mpsc::channel::<Vec<u8>>(64);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = Vec::new();
        loop {
            line.clear();
            match std::io::BufRead::read_until(&mut stdin.lock(), b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line_tx.blocking_send(line.clone()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let options = SessionOptions {
        session: SessionConfig {
            automatic_failover: true,
            ..SessionConfig::default()
        },
        ..SessionOptions::default()
    };
    let mut session = Session::connect(&client, args.pool.clone(), options);
    let info = SendInfo {
        ppid: args.ppid,
        ..SendInfo::default()
    };
    let give_up = Duration::from_millis(args.connect_timeout);
    // Lines sent and not answered yet; the first `handed` of them went to a PE that was lost.
    let mut unanswered: VecDeque<Bytes> = VecDeque::new();
    let mut handed = 0usize;
    let mut credit = 0usize;
    let mut eof = false;
    let mut failovers = 0;
    let mut serving: Option<PoolElementId> = None;
    // Since when no PE serves the session.
    let mut without_pe = Some(Instant::now());
    let mut stdout = std::io::stdout();
    let result = loop {
        let linger = tokio::time::sleep(Duration::from_millis(args.linger));
        let deadline = without_pe.map(|t| t + give_up);
        let give_up_timer = rserpool::transport::sleep_until(deadline);
        tokio::select! {
            line = lines.recv(), if !eof => match line {
                Some(l) => {
                    let m = Bytes::from(l);
                    unanswered.push_back(m.clone());
                    if let Err(e) = session.send(info, m).await {
                        break Err(format!("cannot send: {e}"));
                    }
                }
                None => {
                    eof = true;
                    if unanswered.is_empty() {
                        break Ok(());
                    }
                }
            },
            event = session.next_event() => match event {
                Some(SessionEvent::Message { data, .. }) => {
                    let _ = stdout.write_all(&data);
                    let _ = stdout.flush();
                    credit += data.len();
                    while unanswered.front().is_some_and(|m| m.len() <= credit) {
                        credit -= unanswered.pop_front().map_or(0, |m| m.len());
                        handed = handed.saturating_sub(1);
                    }
                    if unanswered.is_empty() {
                        credit = 0;
                        if eof {
                            break Ok(());
                        }
                    }
                }
                Some(SessionEvent::Connected { pe }) => {
                    eprintln!("rserpool terminal: connected to PE {:#010x}", pe.0);
                    serving = Some(pe);
                    without_pe = None;
                }
                Some(SessionEvent::FailoverNecessary { .. }) => {
                    let pe = serving.take().map_or(0, |p| p.0);
                    eprintln!("rserpool terminal: PE {pe:#010x} lost; failing over");
                    without_pe = Some(Instant::now());
                    handed = unanswered.len();
                    credit = 0;
                    failovers += 1;
                    if failovers > args.max_failovers {
                        break Err(format!("gave up after {} failovers", args.max_failovers));
                    }
                }
                Some(SessionEvent::FailoverComplete { pe, .. }) => {
                    eprintln!("rserpool terminal: connected to PE {:#010x}", pe.0);
                    serving = Some(pe);
                    without_pe = None;
                    if !args.no_resend {
                        let again: Vec<Bytes> = unanswered.iter().take(handed).cloned().collect();
                        for m in again {
                            let _ = session.send(info, m).await;
                        }
                    } else {
                        for _ in 0..handed {
                            unanswered.pop_front();
                        }
                    }
                    handed = 0;
                }
                Some(SessionEvent::NoPoolElement { error }) => {
                    if let Some(e) = error {
                        eprintln!("rserpool terminal: no PE of {}: {e}", args.pool);
                    }
                }
                Some(SessionEvent::PeerShutdown) => {}
                None => break Err("the session ended".into()),
            },
            () = give_up_timer => {
                break Err(format!("no PE of {} reachable within {give_up:?}", args.pool));
            }
            () = linger, if eof => {
                eprintln!("rserpool terminal: {} message(s) unanswered", unanswered.len());
                break Ok(());
            }
        }
    };
    session.close().await;
    client.close().await;
    result
}
