//! `rserpool-registrar`: the RSerPool registrar (PR). Serves ASAP (RFC 5352) to pool elements
//! and pool users over SCTP (rserpool's own, carried over UDP per RFC 6951), announces itself
//! by multicast, and keeps pool elements alive with keep-alives. Every option can also be set
//! in a TOML file (`--config`), with the same names; the command line wins.
// Option docs are clap help texts, where `ADDR[:PORT]` is plain text, not a doc link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rserpool::registrar::{EnrpConfig, TakeoverArbitration};
use rserpool::transport::announce::DEFAULT_ANNOUNCE_GROUP;
use rserpool::wire::LifeUnit;
use rserpool::wire::{ASAP_PORT, ENRP_PORT, RegistrarId};
use rserpool::{DEFAULT_ENRP_GROUP, RegistrarServer, ServerConfig};
use serde::Deserialize;
use tracing::{error, info};

const RSPLIB_MAPPING: &str = "\
Options of RSPLIB's rspregistrar and their equivalents here:
  -identifier=ID                           --id ID
  -asap=ADDR:PORT                          --asap ADDR:PORT        (default 0.0.0.0:3863)
  -asapannounce=auto|off|ADDR[:PORT]       --announce auto|off|ADDR[:PORT]
  -announcettl=N                           --announce-ttl N
  -serverannouncecycle=MS                  --server-announce-cycle MS
  -endpointkeepalivetransmissioninterval=MS --keep-alive-interval MS
  -endpointkeepalivetimeoutinterval=MS     --keep-alive-timeout MS
  -maxbadpereports=N                       --max-bad-pe-reports N
  -maxhresitems=N                          --max-hr-items N
  -maxincrement=N                          --max-increment N
  -minaddressscope=...                     (all scopes are used; --no-address-check drops the
                                            check that PE addresses belong to the association)
  -distancestep=MS                         --distance-step MS
  -enrp=ADDR:PORT                          --enrp ADDR:PORT        (default 0.0.0.0:9901)
  -peer=ADDR[:PORT]                        --peer ADDR[:PORT]      (repeatable)
  -enrpannounce=auto|off|ADDR[:PORT]       --enrp-announce auto|off|ADDR[:PORT]
  -peerheartbeatcycle=MS                   --peer-heartbeat-cycle MS      PEER-HEARTBEAT-CYCLE
  -peermaxtimelastheard=MS                 --peer-max-time-last-heard MS  MAX-TIME-LAST-HEARD
  -peermaxtimenoresponse=MS                --peer-max-time-no-response MS MAX-TIME-NO-RESPONSE
  -mentordiscoverytimeout=MS               --mentor-discovery-timeout MS
  -takeoverexpiryinterval=MS               --takeover-expiry-interval MS
  -maxelementsperhtrequest=N               --max-elements-per-ht-request N
  (RSPLIB's lower-ID takeover rule)        --takeover-rule lower-id|higher-id
  -loglevel=0-9                            --log-level error|warn|info|debug|trace
  -autoclosetimeout, -cspserver, -cspinterval, -maxhrrate, -maxeurate,
  -supporttakeoversuggestion, -logfile, -logcolor, -daemonpidfile,
  -uptime/-downtime: not supported
Differences: Registration Life is read in milliseconds as RSPLIB sends it (--life-unit s for
the RFC's seconds); keep-alive intervals vary by +-50 % (RFC 5352 3.5; --keep-alive-jitter);
the ASAP port is fixed (3863) rather than random; SCTP runs over UDP port 9899, shared with
the host's other rserpool processes (--udp-port, --no-share-host).
ENRP (RFC 5353, replication with peer registrars) runs when any ENRP option is given (--enrp,
--peer, --enrp-announce, an ENRP timer); without one the registrar serves alone, as a single
registrar needs no ENRP port. The ENRP timers default to RSPLIB's values: heartbeat
2444.444 ms, max-time-last-heard, max-time-no-response, mentor discovery and takeover expiry
5000 ms each, 128 PEs per Handle Table Response.";

/// The rserpool registrar: ASAP for pool elements and pool users.
#[derive(Parser, Deserialize, Default, Debug)]
#[command(name = "rserpool-registrar", version, about, after_long_help = RSPLIB_MAPPING)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct Opts {
    /// TOML file with any of these options (same names, e.g. `keep-alive-interval = 5000`).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,

    /// Registrar ID, decimal or 0x-hex (default: random, never 0).
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// ASAP address and SCTP port.
    #[arg(long, value_name = "ADDR:PORT")]
    asap: Option<SocketAddr>,
    /// UDP port of SCTP encapsulation (RFC 6951).
    #[arg(long, value_name = "PORT")]
    udp_port: Option<u16>,
    /// Do not share the UDP port with the host's other rserpool processes.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    no_share_host: Option<bool>,
    /// Server Announces: auto (239.0.0.50:3863), off, or ADDR[:PORT].
    #[arg(long, value_name = "auto|off|ADDR[:PORT]")]
    announce: Option<String>,
    /// The interface (its address) announces leave on.
    #[arg(long, value_name = "ADDR")]
    announce_interface: Option<IpAddr>,
    /// Multicast TTL of announces.
    #[arg(long, value_name = "N")]
    announce_ttl: Option<u32>,
    /// T6-Serverannounce in ms.
    #[arg(long, value_name = "MS")]
    server_announce_cycle: Option<u64>,
    /// Time from a registration or Keep-Alive Ack to the next Endpoint Keep-Alive, ms.
    #[arg(long, value_name = "MS")]
    keep_alive_interval: Option<u64>,
    /// Random variation of the keep-alive interval, percent.
    #[arg(long, value_name = "PERCENT")]
    keep_alive_jitter: Option<u8>,
    /// Time to wait for a Keep-Alive Ack before the PE is removed, ms.
    #[arg(long, value_name = "MS")]
    keep_alive_timeout: Option<u64>,
    /// Put the PE Identifier into keep-alives (as RSPLIB; not RFC 5352).
    #[arg(long, num_args = 0, default_missing_value = "true")]
    keep_alive_with_pe_id: Option<bool>,
    /// Least time between an Endpoint Unreachable probe and the PE's last keep-alive, ms
    /// (RFC 5355 2.14; 0: no limit).
    #[arg(long, value_name = "MS")]
    min_probe_interval: Option<u64>,
    /// MAX-BAD-PE-REPORT: Endpoint Unreachable reports tolerated before removal.
    #[arg(long, value_name = "N")]
    max_bad_pe_reports: Option<u32>,
    /// PEs per handle resolution when the pool user does not ask for a number.
    #[arg(long, value_name = "N")]
    max_hr_items: Option<u32>,
    /// Most PEs per handle resolution, whatever is asked.
    #[arg(long, value_name = "N")]
    hr_items_limit: Option<u32>,
    /// MaxIncrement of handle resolutions (0: the policy's default).
    #[arg(long, value_name = "N")]
    max_increment: Option<usize>,
    /// Unit of Registration Life values: ms (RSPLIB) or s (RFC 5354).
    #[arg(long, value_name = "ms|s")]
    life_unit: Option<String>,
    /// Keep owned PEs whose registration life ran out (RSPLIB's behaviour).
    #[arg(long, num_args = 0, default_missing_value = "true")]
    no_life_expiry: Option<bool>,
    /// Accept PE addresses that are not addresses of the registration's association.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    no_address_check: Option<bool>,
    /// Longest pool handle accepted, bytes.
    #[arg(long, value_name = "BYTES")]
    max_pool_handle_length: Option<usize>,
    /// Most PEs in the handlespace.
    #[arg(long, value_name = "N")]
    max_pes: Option<usize>,
    /// Most PEs registered over one association.
    #[arg(long, value_name = "N")]
    max_pes_per_association: Option<usize>,
    /// Distance granularity of distance-penalty policies, ms.
    #[arg(long, value_name = "MS")]
    distance_step: Option<u32>,
    /// ENRP address and SCTP port (turns ENRP on; default 0.0.0.0:9901 when on).
    #[arg(long, value_name = "ADDR:PORT")]
    enrp: Option<SocketAddr>,
    /// ENRP Presence multicast: auto (239.0.0.51:9901), off, or ADDR[:PORT] (turns ENRP on).
    #[arg(long, value_name = "auto|off|ADDR[:PORT]")]
    enrp_announce: Option<String>,
    /// A static ENRP peer, ADDR[:PORT] (port 9901 if omitted; repeatable; turns ENRP on).
    #[arg(long = "peer", value_name = "ADDR[:PORT]")]
    #[serde(rename = "peer")]
    peers: Vec<String>,
    /// PEER-HEARTBEAT-CYCLE: time between Presences to each peer, ms (RSPLIB 2444.444).
    #[arg(long, value_name = "MS")]
    peer_heartbeat_cycle: Option<f64>,
    /// MAX-TIME-LAST-HEARD: a peer silent this long is asked to answer, ms (RSPLIB 5000).
    #[arg(long, value_name = "MS")]
    peer_max_time_last_heard: Option<u64>,
    /// MAX-TIME-NO-RESPONSE: an asked peer silent this long more is taken over, ms (5000).
    #[arg(long, value_name = "MS")]
    peer_max_time_no_response: Option<u64>,
    /// How long a starting registrar waits for a mentor peer, ms (RSPLIB 5000).
    #[arg(long, value_name = "MS")]
    mentor_discovery_timeout: Option<u64>,
    /// How long a takeover waits for the peers' acknowledgements, ms (RSPLIB 5000).
    #[arg(long, value_name = "MS")]
    takeover_expiry_interval: Option<u64>,
    /// Most PEs in one Handle Table Response (RSPLIB 128).
    #[arg(long, value_name = "N")]
    max_elements_per_ht_request: Option<usize>,
    /// Who wins competing takeovers: lower-id (RSPLIB, default) or higher-id (RFC 5353).
    #[arg(long, value_name = "lower-id|higher-id")]
    takeover_rule: Option<String>,
    /// Log level: error, warn, info, debug or trace (RUST_LOG overrides).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Seed of the registrar's random choices (tests).
    #[arg(long, value_name = "N", hide = true)]
    seed: Option<u64>,
}

impl Opts {
    /// The command line over the config file.
    fn merge(self, file: Opts) -> Opts {
        macro_rules! pick {
            ($($f:ident),*) => { Opts { $($f: self.$f.or(file.$f),)* config: self.config,
                peers: if self.peers.is_empty() { file.peers } else { self.peers } } };
        }
        pick!(
            id,
            asap,
            udp_port,
            no_share_host,
            announce,
            announce_interface,
            announce_ttl,
            server_announce_cycle,
            keep_alive_interval,
            keep_alive_jitter,
            keep_alive_timeout,
            keep_alive_with_pe_id,
            min_probe_interval,
            max_bad_pe_reports,
            max_hr_items,
            hr_items_limit,
            max_increment,
            life_unit,
            no_life_expiry,
            no_address_check,
            max_pool_handle_length,
            max_pes,
            max_pes_per_association,
            distance_step,
            enrp,
            enrp_announce,
            peer_heartbeat_cycle,
            peer_max_time_last_heard,
            peer_max_time_no_response,
            mentor_discovery_timeout,
            takeover_expiry_interval,
            max_elements_per_ht_request,
            takeover_rule,
            log_level,
            seed
        )
    }
}

impl Opts {
    /// Whether any ENRP option is given.
    fn enrp_on(&self) -> bool {
        self.enrp.is_some()
            || !self.peers.is_empty()
            || self.enrp_announce.is_some()
            || self.peer_heartbeat_cycle.is_some()
            || self.peer_max_time_last_heard.is_some()
            || self.peer_max_time_no_response.is_some()
            || self.mentor_discovery_timeout.is_some()
            || self.takeover_expiry_interval.is_some()
            || self.max_elements_per_ht_request.is_some()
            || self.takeover_rule.is_some()
    }
}

fn parse_id(s: &str) -> Result<RegistrarId, String> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse::<u32>(),
    }
    .map_err(|_| format!("registrar ID {s:?} is not a 32-bit number"))?;
    if v == 0 {
        return Err("registrar ID 0 is reserved".into());
    }
    Ok(RegistrarId(v))
}

/// `auto`, `off`/`none`, or `ADDR[:PORT]`.
fn parse_group(s: &str, auto: SocketAddr) -> Result<Option<SocketAddr>, String> {
    match s {
        "auto" => Ok(Some(auto)),
        "off" | "none" => Ok(None),
        _ => {
            if let Ok(a) = s.parse::<SocketAddr>() {
                return Ok(Some(a));
            }
            let ip: IpAddr = s
                .parse()
                .map_err(|_| format!("{s:?} is not auto, off, or an address with optional port"))?;
            Ok(Some(SocketAddr::new(ip, auto.port())))
        }
    }
}

fn parse_peer(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, ENRP_PORT))
        .map_err(|_| format!("peer {s:?} is not ADDR[:PORT]"))
}

fn build(o: &Opts) -> Result<ServerConfig, String> {
    let id = match &o.id {
        Some(s) => parse_id(s)?,
        None => RegistrarId(rand::random_range(1..=u32::MAX)),
    };
    let mut c = ServerConfig::new(id);
    let asap = o
        .asap
        .unwrap_or_else(|| SocketAddr::new(IpAddr::from([0, 0, 0, 0]), ASAP_PORT));
    if asap.port() == 0 {
        return Err("the ASAP port must not be 0 (PEs and PUs need to know it)".into());
    }
    c.asap_port = asap.port();
    c.transport.local = asap.ip();
    if let Some(p) = o.udp_port {
        if p == 0 {
            return Err("the UDP encapsulation port must not be 0".into());
        }
        c.transport.udp_port = p;
        // The same port is assumed at peers and at PEs a takeover reaches.
        c.transport.remote_udp_port = p;
    }
    c.transport.share_host = !o.no_share_host.unwrap_or(false);
    c.announce_group = parse_group(
        o.announce.as_deref().unwrap_or("auto"),
        DEFAULT_ANNOUNCE_GROUP,
    )?;
    c.announce_interface = o.announce_interface;
    if let Some(t) = o.announce_ttl {
        if !(1..=255).contains(&t) {
            return Err("the announce TTL must be 1 to 255".into());
        }
        c.announce_ttl = t;
    }
    let r = &mut c.registrar;
    if c.announce_group.is_none() {
        r.server_announce_cycle = None;
    } else if let Some(ms) = o.server_announce_cycle {
        r.server_announce_cycle = Some(Duration::from_millis(ms));
    }
    if let Some(ms) = o.keep_alive_interval {
        r.keep_alive_transmission_interval = Duration::from_millis(ms);
    }
    if let Some(p) = o.keep_alive_jitter {
        r.keep_alive_jitter_percent = p;
    }
    if let Some(ms) = o.keep_alive_timeout {
        r.keep_alive_timeout_interval = Duration::from_millis(ms);
    }
    if let Some(b) = o.keep_alive_with_pe_id {
        r.keep_alive_with_pe_id = b;
    }
    if let Some(ms) = o.min_probe_interval {
        r.min_probe_interval = Duration::from_millis(ms);
    }
    if let Some(n) = o.max_bad_pe_reports {
        r.max_bad_pe_reports = n;
    }
    if let Some(n) = o.max_hr_items {
        r.max_handle_resolution_items = n;
    }
    if let Some(n) = o.hr_items_limit {
        r.handle_resolution_items_limit = n;
    }
    if let Some(n) = o.max_increment {
        r.max_increment = (n > 0).then_some(n);
    }
    r.registration_life_unit = match o.life_unit.as_deref() {
        None | Some("ms") => LifeUnit::Milliseconds,
        Some("s") => LifeUnit::Seconds,
        Some(x) => return Err(format!("life unit {x:?}: use ms or s")),
    };
    r.expire_owned_pes = !o.no_life_expiry.unwrap_or(false);
    r.check_user_addresses = !o.no_address_check.unwrap_or(false);
    if let Some(n) = o.max_pool_handle_length {
        r.max_pool_handle_length = n;
    }
    if let Some(n) = o.max_pes {
        r.max_pool_elements = n;
    }
    if let Some(n) = o.max_pes_per_association {
        r.max_pool_elements_per_association = n;
    }
    if let Some(n) = o.distance_step {
        r.distance_step_ms = n;
    }
    if o.enrp_on() {
        let mut e = EnrpConfig::default();
        for p in &o.peers {
            e.static_peers.push(parse_peer(p)?);
        }
        let enrp = o
            .enrp
            .unwrap_or_else(|| SocketAddr::new(asap.ip(), ENRP_PORT));
        if enrp.port() == 0 {
            return Err("the ENRP port must not be 0 (peers need to know it)".into());
        }
        if enrp.ip() != asap.ip() {
            return Err(
                "ENRP and ASAP are served on one address (--enrp and --asap differ)".into(),
            );
        }
        c.enrp_port = enrp.port();
        c.enrp_group = parse_group(
            o.enrp_announce.as_deref().unwrap_or("auto"),
            DEFAULT_ENRP_GROUP,
        )?;
        e.announce = c.enrp_group.is_some();
        if let Some(ms) = o.peer_heartbeat_cycle {
            if !ms.is_finite() || ms <= 0.0 {
                return Err("the peer heartbeat cycle must be positive".into());
            }
            e.peer_heartbeat_cycle = Duration::from_secs_f64(ms / 1000.0);
        }
        let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
        e.max_time_last_heard = ms(o.peer_max_time_last_heard, e.max_time_last_heard);
        e.max_time_no_response = ms(o.peer_max_time_no_response, e.max_time_no_response);
        e.mentor_discovery_timeout = ms(o.mentor_discovery_timeout, e.mentor_discovery_timeout);
        e.takeover_expiry_interval = ms(o.takeover_expiry_interval, e.takeover_expiry_interval);
        if let Some(n) = o.max_elements_per_ht_request {
            e.max_elements_per_ht_request = n;
        }
        e.arbitration = match o.takeover_rule.as_deref() {
            None | Some("lower-id") => TakeoverArbitration::LowerIdWins,
            Some("higher-id") => TakeoverArbitration::HigherIdWins,
            Some(x) => return Err(format!("takeover rule {x:?}: use lower-id or higher-id")),
        };
        r.enrp = Some(e);
    }
    r.validate().map_err(|e| e.to_string())?;
    c.seed = o.seed;
    Ok(c)
}

fn load(path: &PathBuf) -> Result<Opts, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() -> ExitCode {
    let cli = Opts::parse();
    let opts = match &cli.config {
        Some(p) => match load(p) {
            Ok(f) => cli.merge(f),
            Err(e) => {
                eprintln!("rserpool-registrar: {e}");
                return ExitCode::from(2);
            }
        },
        None => cli,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(opts.log_level.as_deref().unwrap_or("info"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match build(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rserpool-registrar: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(e) = &config.registrar.enrp {
        for (name, value, rsplib) in e.rfc_timers() {
            info!(timer = name, ?value, rsplib, "ENRP");
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rserpool-registrar: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve(config))
}

async fn serve(config: ServerConfig) -> ExitCode {
    let announce = config.announce_group;
    let mut handle = match RegistrarServer::start(config).await {
        Ok(h) => h,
        Err(e) => {
            error!("cannot start: {e}");
            eprintln!("rserpool-registrar: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The handlers are in place before "ready": a script that stops the registrar as soon as
    // it is ready must not kill it (SIGTERM's default action) instead.
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            error!("cannot watch SIGTERM and SIGINT: {e}");
            handle.shutdown();
            return ExitCode::FAILURE;
        }
    };
    // One line on stdout for scripts and tests to wait for.
    println!(
        "rserpool-registrar ready: id={:#010x} asap-port={} udp={} front={} announce={} enrp-port={}",
        handle.id().0,
        handle.asap_port(),
        handle.udp_local_addr(),
        handle.is_front(),
        announce.map_or("off".to_string(), |a| a.to_string()),
        handle
            .enrp_port()
            .map_or("off".to_string(), |p| p.to_string())
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tokio::select! {
        _ = int.recv() => info!("SIGINT"),
        _ = term.recv() => info!("SIGTERM"),
    }
    if let Some((stats, pes)) = handle.stats().await {
        info!(pes, ?stats, "final statistics");
    }
    handle.shutdown();
    handle.stopped().await;
    info!("stopped");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_zero_is_refused() {
        assert_eq!(parse_id("0x1a2b").unwrap(), RegistrarId(0x1a2b));
        assert_eq!(parse_id("42").unwrap(), RegistrarId(42));
        assert!(parse_id("0").is_err());
        assert!(parse_id("0x1_0000_0000").is_err());
        assert!(parse_id("pr1").is_err());
    }

    #[test]
    fn groups_and_peers_parse() {
        let d = DEFAULT_ANNOUNCE_GROUP;
        assert_eq!(parse_group("auto", d).unwrap(), Some(d));
        assert_eq!(parse_group("off", d).unwrap(), None);
        assert_eq!(
            parse_group("239.1.2.3", d).unwrap(),
            Some("239.1.2.3:3863".parse().unwrap())
        );
        assert_eq!(
            parse_group("239.1.2.3:4000", d).unwrap(),
            Some("239.1.2.3:4000".parse().unwrap())
        );
        assert!(parse_group("nowhere", d).is_err());
        assert_eq!(
            parse_peer("10.0.0.1").unwrap(),
            "10.0.0.1:9901".parse().unwrap()
        );
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let file: Opts = toml::from_str(
            "id = \"0x10\"\nkeep-alive-interval = 2000\npeer = [\"10.0.0.2\"]\nno-share-host = true",
        )
        .unwrap();
        let cli = Opts::parse_from(["x", "--keep-alive-interval", "700", "--no-address-check"]);
        let o = cli.merge(file);
        let c = build(&o).unwrap();
        assert_eq!(c.registrar.id, RegistrarId(0x10));
        assert_eq!(
            c.registrar.keep_alive_transmission_interval,
            Duration::from_millis(700)
        );
        assert!(!c.transport.share_host);
        assert!(!c.registrar.check_user_addresses);
        assert_eq!(o.peers, ["10.0.0.2"]);
    }

    #[test]
    fn enrp_options_turn_enrp_on_with_rsplib_defaults() {
        let c = build(&Opts::parse_from(["x"])).unwrap();
        assert!(c.registrar.enrp.is_none(), "off without ENRP options");
        let c = build(&Opts::parse_from([
            "x",
            "--asap",
            "127.0.0.1:3863",
            "--peer",
            "127.0.0.2",
            "--peer",
            "127.0.0.3:9902",
            "--enrp-announce",
            "off",
            "--peer-max-time-last-heard",
            "700",
            "--takeover-rule",
            "higher-id",
        ]))
        .unwrap();
        let e = c.registrar.enrp.expect("on");
        assert_eq!(
            e.static_peers,
            [
                "127.0.0.2:9901".parse::<SocketAddr>().unwrap(),
                "127.0.0.3:9902".parse().unwrap()
            ]
        );
        assert_eq!(c.enrp_port, ENRP_PORT);
        assert_eq!(c.enrp_group, None);
        assert!(!e.announce);
        assert_eq!(e.max_time_last_heard, Duration::from_millis(700));
        assert_eq!(e.max_time_no_response, Duration::from_secs(5));
        assert_eq!(e.peer_heartbeat_cycle, Duration::from_micros(2_444_444));
        assert_eq!(e.arbitration, TakeoverArbitration::HigherIdWins);
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let bad = |args: &[&str]| build(&Opts::parse_from(args)).unwrap_err();
        assert!(bad(&["x", "--keep-alive-interval", "0"]).contains("keep-alive"));
        assert!(bad(&["x", "--life-unit", "h"]).contains("life unit"));
        assert!(bad(&["x", "--asap", "0.0.0.0:0"]).contains("ASAP port"));
        assert!(bad(&["x", "--peer", "x"]).contains("peer"));
        assert!(bad(&["x", "--takeover-rule", "random"]).contains("takeover rule"));
        assert!(bad(&["x", "--peer-max-time-last-heard", "0"]).contains("MAX-TIME-LAST-HEARD"));
        assert!(bad(&["x", "--enrp", "127.0.0.1:0"]).contains("ENRP port"));
        assert!(toml::from_str::<Opts>("unknown-option = 1").is_err());
    }
}
