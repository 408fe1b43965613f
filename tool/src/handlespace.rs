//! `rserpool handlespace`: shows a registrar's handlespace, as RSPLIB's `hsdump` does, by
//! posing as an ENRP peer for one exchange (RFC 5353): a Presence asking for a reply, a List
//! Request, and Handle Table Requests until the last page. Works against RSPLIB registrars.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use rserpool::handlespace::Checksum;
use rserpool::transport::{Association, Endpoint, TransportConfig};
use rserpool::wire::{
    ENRP_PORT, EnrpMessage, HandleTableRequest, PPID_ENRP, PoolElement, PoolHandle, Presence,
    RegistrarId, SctpTransport, ServerIds, ServerInformation, TransportUse,
};

use super::common;
use super::resolve::{policy_text, transport_text};

/// Show a registrar's handlespace (like RSPLIB's hsdump).
#[derive(Args, Debug)]
pub struct HandlespaceArgs {
    /// The registrar's ENRP endpoint, ADDR[:PORT] (port 9901 if omitted).
    #[arg(value_parser = parse_enrp)]
    registrar: SocketAddr,
    /// The registrar ID to pose as (default: random).
    #[arg(long, value_name = "ID")]
    id: Option<u32>,
    /// UDP port of SCTP encapsulation (RFC 6951), also assumed at the registrar.
    #[arg(long, value_name = "PORT", default_value_t = 9899)]
    udp_port: u16,
    /// Do not share the UDP port with the host's other rserpool processes.
    #[arg(long)]
    no_share_host: bool,
    /// The local address to bind (default: all).
    #[arg(long, value_name = "ADDR")]
    local: Option<IpAddr>,
    /// Give up after this long, ms.
    #[arg(long, value_name = "MS", default_value_t = 10000)]
    timeout: u64,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_enrp(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, ENRP_PORT))
        .map_err(|_| format!("{s:?} is not ADDR[:PORT]"))
}

/// What the registrar told.
struct Dump {
    id: RegistrarId,
    checksum: Option<u16>,
    peers: Vec<ServerInformation>,
    pes: Vec<(PoolHandle, PoolElement)>,
}

struct Exchange {
    assoc: Association,
    me: RegistrarId,
    end: Instant,
}

impl Exchange {
    async fn send(&self, msg: &EnrpMessage) -> Result<(), String> {
        let b = msg.to_bytes().map_err(|e| e.to_string())?;
        self.assoc
            .send(PPID_ENRP, Bytes::from(b))
            .await
            .map_err(|e| format!("cannot send: {e:?}"))
    }

    /// The next ENRP message the registrar sends (others are skipped).
    async fn recv(&self, what: &str) -> Result<EnrpMessage, String> {
        loop {
            let left = self
                .end
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("no {what} in time"))?;
            let (ppid, data) = tokio::time::timeout(left, self.assoc.recv())
                .await
                .map_err(|_| format!("no {what} in time"))?
                .map_err(|_| format!("the registrar closed the association before the {what}"))?;
            if ppid != PPID_ENRP {
                continue;
            }
            match EnrpMessage::decode(&data) {
                Ok(m) => return Ok(m),
                Err(e) => return Err(format!("undecodable ENRP message: {e}")),
            }
        }
    }

    fn ids(&self, receiver: RegistrarId) -> ServerIds {
        ServerIds {
            sender: self.me,
            receiver,
        }
    }
}

async fn dump(args: &HandlespaceArgs) -> Result<Dump, String> {
    let mut transport = TransportConfig {
        udp_port: args.udp_port,
        remote_udp_port: args.udp_port,
        share_host: !args.no_share_host,
        ..TransportConfig::default()
    };
    if let Some(ip) = args.local {
        transport.local = ip;
    }
    let end = Instant::now() + Duration::from_millis(args.timeout.max(1));
    let endpoint = Endpoint::bind(&transport)
        .await
        .map_err(|e| format!("cannot bind UDP port {}: {e}", args.udp_port))?;
    let left = end.saturating_duration_since(Instant::now());
    let assoc = tokio::time::timeout(left, endpoint.connect(&[args.registrar], 0))
        .await
        .map_err(|_| format!("{}: no answer", args.registrar))?
        .map_err(|e| format!("{}: {e}", args.registrar))?;
    let me = RegistrarId(args.id.unwrap_or_else(|| rand::random_range(1..=u32::MAX)));
    let local_port = assoc.peer().map_or(0, |p| p.local_port);
    let x = Exchange { assoc, me, end };
    x.send(&EnrpMessage::Presence(Presence {
        ids: x.ids(RegistrarId(0)),
        reply_required: true,
        checksum: Some(Checksum::EMPTY.value()),
        server_info: Some(ServerInformation {
            server_id: me,
            transport: SctpTransport {
                port: local_port,
                transport_use: TransportUse::DataOnly,
                addresses: vec![transport.local],
            },
        }),
    }))
    .await?;
    let (id, checksum) = loop {
        if let EnrpMessage::Presence(p) = x.recv("Presence").await? {
            break (p.ids.sender, p.checksum);
        }
    };
    x.send(&EnrpMessage::ListRequest(x.ids(id))).await?;
    let peers = loop {
        if let EnrpMessage::ListResponse(l) = x.recv("List Response").await? {
            break l.servers;
        }
    };
    let mut pes = Vec::new();
    loop {
        x.send(&EnrpMessage::HandleTableRequest(HandleTableRequest {
            ids: x.ids(id),
            own_children_only: false,
        }))
        .await?;
        let r = loop {
            if let EnrpMessage::HandleTableResponse(r) = x.recv("Handle Table Response").await? {
                break r;
            }
        };
        if r.reject {
            return Err("the registrar refused the Handle Table Request".into());
        }
        for entry in r.pools {
            for pe in entry.elements {
                pes.push((entry.pool_handle.clone(), pe));
            }
        }
        if !r.more_to_send {
            break;
        }
    }
    x.assoc.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(1), x.assoc.closed()).await;
    endpoint.close();
    Ok(Dump {
        id,
        checksum,
        peers,
        pes,
    })
}

fn addresses(t: &SctpTransport) -> String {
    let v: Vec<String> = t
        .addresses
        .iter()
        .map(|a| match a {
            IpAddr::V6(v6) => format!("[{v6}]:{}", t.port),
            a => format!("{a}:{}", t.port),
        })
        .collect();
    v.join(",")
}

fn print(d: &Dump, json: bool) {
    let mut owners: BTreeMap<u32, (usize, Checksum)> = BTreeMap::new();
    for (pool, pe) in &d.pes {
        let o = owners
            .entry(pe.home_registrar.0)
            .or_insert((0, Checksum::EMPTY));
        o.0 += 1;
        o.1.add(pool, pe.id);
    }
    let own = owners.get(&d.id.0).map_or(Checksum::EMPTY, |o| o.1);
    let in_sync = d.checksum.is_none_or(|c| own.matches(c));
    if json {
        let v = serde_json::json!({
            "registrar": d.id.0,
            "checksum": d.checksum,
            "checksum_matches": in_sync,
            "peers": d.peers.iter().map(|p| serde_json::json!({
                "id": p.server_id.0,
                "transport": addresses(&p.transport),
            })).collect::<Vec<_>>(),
            "owners": owners.iter().map(|(id, (n, c))| serde_json::json!({
                "id": id, "pes": n, "checksum": c.value(),
            })).collect::<Vec<_>>(),
            "pes": d.pes.iter().map(|(pool, pe)| serde_json::json!({
                "pool": pool.to_string(),
                "id": pe.id.0,
                "home": pe.home_registrar.0,
                "transport": transport_text(&pe.user_transport),
                "policy": policy_text(pe, true),
                "life": pe.registration_life,
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
        return;
    }
    println!(
        "registrar {:#010x}: {} PEs, its own checksum {} ({})",
        d.id.0,
        d.pes.len(),
        d.checksum
            .map_or_else(|| "not sent".to_string(), |c| format!("{c:#06x}")),
        if in_sync {
            "matches its PEs".to_string()
        } else {
            format!("its listed PEs give {:#06x}", own.value())
        }
    );
    println!("peers ({}):", d.peers.len());
    for p in &d.peers {
        println!(
            "  {:#010x}  sctp {}",
            p.server_id.0,
            addresses(&p.transport)
        );
    }
    println!("owners ({}):", owners.len());
    for (id, (n, c)) in &owners {
        println!("  {id:#010x}  {n} PEs  checksum {:#06x}", c.value());
    }
    let mut pools: BTreeMap<String, Vec<&PoolElement>> = BTreeMap::new();
    for (pool, pe) in &d.pes {
        pools.entry(pool.to_string()).or_default().push(pe);
    }
    println!("pools ({}):", pools.len());
    for (pool, pes) in pools {
        println!("  {pool}: {} PEs", pes.len());
        for pe in pes {
            println!(
                "    {:#010x}  {}  {}  home {:#010x}",
                pe.id.0,
                transport_text(&pe.user_transport),
                policy_text(pe, false),
                pe.home_registrar.0
            );
        }
    }
}

pub fn run(args: HandlespaceArgs) -> ExitCode {
    let rt = match common::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rserpool handlespace: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dump(&args)) {
        Ok(d) => {
            print(&d, args.json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rserpool handlespace: {e}");
            ExitCode::FAILURE
        }
    }
}
