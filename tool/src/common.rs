//! Options every ASAP-speaking subcommand shares, and their setup.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Args;
use rserpool::transport::announce::DEFAULT_ANNOUNCE_GROUP;
use rserpool::wire::{ASAP_PORT, PoolHandle};
use rserpool::{Client, ClientOptions};

/// How to reach registrars.
#[derive(Args, Debug, Clone)]
pub struct AsapArgs {
    /// A registrar's ASAP endpoint, ADDR[:PORT] (port 3863 if omitted); repeatable.
    #[arg(long = "registrar", value_name = "ADDR[:PORT]", value_parser = parse_registrar)]
    pub registrars: Vec<SocketAddr>,
    /// Server Announces to listen to: auto (239.0.0.50:3863), off, or ADDR[:PORT].
    #[arg(long, value_name = "auto|off|ADDR[:PORT]", default_value = "auto")]
    pub announce: String,
    /// UDP port of SCTP encapsulation (RFC 6951), shared with the host's other rserpool
    /// processes, and assumed at registrars and PEs.
    #[arg(long, value_name = "PORT", default_value_t = 9899)]
    pub udp_port: u16,
    /// Do not share the UDP port with the host's other rserpool processes.
    #[arg(long)]
    pub no_share_host: bool,
    /// The local address to bind (default: all).
    #[arg(long, value_name = "ADDR")]
    pub local: Option<IpAddr>,
    /// T1-ENRPrequest (handle resolution timeout), ms.
    #[arg(long, value_name = "MS", default_value_t = 15000)]
    pub t1: u64,
    /// Log level (RUST_LOG overrides).
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    pub log_level: String,
}

fn parse_registrar(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, ASAP_PORT))
        .map_err(|_| format!("{s:?} is not ADDR[:PORT]"))
}

/// A pool handle from the command line.
pub fn parse_pool(s: &str) -> Result<PoolHandle, String> {
    PoolHandle::try_from(s).map_err(|e| format!("pool handle {s:?}: {e}"))
}

impl AsapArgs {
    /// Sets up logging to stderr.
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&self.log_level));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init();
    }

    /// The client options these arguments describe.
    pub fn options(&self) -> Result<ClientOptions, String> {
        let mut o = ClientOptions::default();
        o.asap.registrars = self.registrars.clone();
        o.asap.t1_enrp_request = Duration::from_millis(self.t1.max(1));
        o.announce_group = match self.announce.as_str() {
            "auto" => Some(DEFAULT_ANNOUNCE_GROUP),
            "off" | "none" => None,
            s => Some(
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, ASAP_PORT)))
                    .map_err(|_| format!("--announce {s:?}: auto, off or ADDR[:PORT]"))?,
            ),
        };
        if o.announce_group.is_none() && o.asap.registrars.is_empty() {
            return Err("no registrar: give --registrar, or leave announces on".into());
        }
        o.transport.udp_port = self.udp_port;
        // The same well-known port is assumed on every host.
        o.transport.remote_udp_port = self.udp_port;
        o.transport.share_host = !self.no_share_host;
        if let Some(ip) = self.local {
            o.transport.local = ip;
        }
        Ok(o)
    }

    /// Starts a client.
    pub async fn start(&self) -> Result<Client, String> {
        let o = self.options()?;
        Client::start(o)
            .await
            .map_err(|e| format!("cannot start the ASAP client: {e}"))
    }
}

/// A tokio runtime for a subcommand.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Watches for SIGINT and SIGTERM from the call on (the handlers are in place when it
/// returns, so call it before telling anyone the process is ready); the future completes on
/// the first of them.
pub fn termination() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = signals else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}
