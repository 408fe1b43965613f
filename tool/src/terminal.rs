//! `rserpool terminal`: a pool user that connects standard input and output to a pool (like
//! RSPLIB's `rspterminal`), failing over to another PE when its PE goes away.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use rserpool::Client;
use rserpool::transport::{Association, default_association_config};
use rserpool::wire::{PoolElementId, PoolHandle};
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

struct Session {
    pe: PoolElementId,
    assoc: Arc<Association>,
}

/// Connects to a PE of the pool, skipping those that failed lately.
async fn connect(
    client: &Client,
    pool: &PoolHandle,
    failed: &mut HashMap<PoolElementId, Instant>,
    give_up: Duration,
) -> Result<Session, String> {
    let end = Instant::now() + give_up;
    let mut last_error = String::from("no PE");
    let mut config = default_association_config();
    // A pool user wants to notice a dead PE fast (RSPLIB sets the session's RTO likewise).
    config.rto_initial = Duration::from_millis(300);
    config.rto_max = Duration::from_millis(600);
    config.max_init_retransmits = 4;
    config.max_retrans = 4;
    config.heartbeat_interval = Some(Duration::from_millis(500));
    while Instant::now() < end {
        failed.retain(|_, t| t.elapsed() < Duration::from_secs(30));
        match client.resolve(pool, None).await {
            Ok(pes) => {
                let fresh: Vec<_> = pes
                    .into_iter()
                    .filter(|p| !failed.contains_key(&p.id))
                    .collect();
                for pe in &fresh {
                    let port = pe.user_transport.port().unwrap_or(0);
                    let remote: Vec<_> = pe
                        .user_transport
                        .addresses()
                        .iter()
                        .map(|&a| std::net::SocketAddr::new(a, port))
                        .collect();
                    match client
                        .endpoint()
                        .connect_with(&remote, 0, Some(config.clone()))
                        .await
                    {
                        Ok(a) => {
                            eprintln!(
                                "rserpool terminal: connected to PE {:#010x} at {}",
                                pe.id.0,
                                remote
                                    .iter()
                                    .map(|r| r.to_string())
                                    .collect::<Vec<_>>()
                                    .join(",")
                            );
                            return Ok(Session {
                                pe: pe.id,
                                assoc: Arc::new(a),
                            });
                        }
                        Err(e) => {
                            last_error = format!("PE {:#010x}: {e}", pe.id.0);
                            eprintln!("rserpool terminal: {last_error}; reported unreachable");
                            client.report_unreachable(pool, pe.id);
                            failed.insert(pe.id, Instant::now());
                        }
                    }
                }
            }
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!("no PE of {pool} reachable: {last_error}"))
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
    let give_up = Duration::from_millis(args.connect_timeout);
    let mut failed = HashMap::new();
    let mut unanswered: VecDeque<Bytes> = VecDeque::new();
    let mut credit = 0usize;
    let mut eof = false;
    let mut failovers = 0;
    let mut session: Option<Session> = None;
    let mut stdout = std::io::stdout();
    loop {
        let s = match &session {
            Some(s) => s,
            None => {
                let s = connect(&client, &args.pool, &mut failed, give_up).await?;
                if !args.no_resend {
                    for m in &unanswered {
                        let _ = s.assoc.send(args.ppid, m.clone()).await;
                    }
                }
                credit = 0;
                session.insert(s)
            }
        };
        let assoc = s.assoc.clone();
        let linger = tokio::time::sleep(Duration::from_millis(args.linger));
        tokio::select! {
            line = lines.recv(), if !eof => match line {
                Some(l) => {
                    let m = Bytes::from(l);
                    unanswered.push_back(m.clone());
                    // A failed send shows up as a lost association below.
                    let _ = assoc.send(args.ppid, m).await;
                }
                None => {
                    eof = true;
                    if unanswered.is_empty() {
                        break;
                    }
                }
            },
            msg = assoc.recv() => match msg {
                Ok((_, data)) => {
                    let _ = stdout.write_all(&data);
                    let _ = stdout.flush();
                    credit += data.len();
                    while unanswered.front().is_some_and(|m| m.len() <= credit) {
                        credit -= unanswered.pop_front().map_or(0, |m| m.len());
                    }
                    if unanswered.is_empty() {
                        credit = 0;
                        if eof {
                            break;
                        }
                    }
                }
                Err(e) => {
                    let pe = s.pe;
                    eprintln!("rserpool terminal: PE {:#010x} lost ({e}); failing over", pe.0);
                    client.report_unreachable(&args.pool, pe);
                    failed.insert(pe, Instant::now());
                    session = None;
                    failovers += 1;
                    if failovers > args.max_failovers {
                        return Err(format!("gave up after {} failovers", args.max_failovers));
                    }
                }
            },
            () = linger, if eof => {
                eprintln!("rserpool terminal: {} message(s) unanswered", unanswered.len());
                break;
            }
        }
    }
    if let Some(s) = session {
        s.assoc.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.assoc.closed()).await;
    }
    client.close().await;
    Ok(())
}
