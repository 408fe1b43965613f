//! `rserpool resolve`: asks a registrar for the PEs of a pool.

use std::process::ExitCode;

use clap::Args;
use rserpool::asap::ClientError;
use rserpool::wire::{PoolElement, PoolHandle, Transport, TransportUse};

use super::common::{self, AsapArgs};

/// Resolve a pool handle to pool elements.
#[derive(Args, Debug)]
pub struct ResolveArgs {
    /// The pool handle.
    #[arg(value_parser = common::parse_pool)]
    pool: PoolHandle,
    /// How many PEs to ask for: a number or `all` (default: the registrar's choice).
    #[arg(long, value_name = "N|all")]
    items: Option<String>,
    /// One JSON object per PE.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    asap: AsapArgs,
}

pub(crate) fn transport_text(t: &Transport) -> String {
    let (name, port) = match t {
        Transport::Sctp(s) => ("sctp", s.port),
        Transport::Tcp { port, .. } => ("tcp", *port),
        Transport::Udp { port, .. } => ("udp", *port),
        Transport::UdpLite { port, .. } => ("udplite", *port),
        Transport::Dccp { port, .. } => ("dccp", *port),
        Transport::Opaque(_) => return "opaque".into(),
    };
    let addrs: Vec<String> = t
        .addresses()
        .iter()
        .map(|a| match a {
            std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
            a => format!("{a}:{port}"),
        })
        .collect();
    let usage = match t.transport_use() {
        TransportUse::DataOnly => "data",
        TransportUse::DataPlusControl => "data+control",
    };
    format!("{name} {} ({usage})", addrs.join(","))
}

/// A policy value as people read it: loads, load degradations and distance penalty factors
/// are fractions of 0xFFFFFFFF (RFC 5356, RSPLIB), shown in per cent; distances in ms.
fn value_text(name: &str, v: u32) -> String {
    if name.starts_with("load") || name == "weight_dpf" {
        format!("{:.1}%", f64::from(v) * 100.0 / f64::from(u32::MAX))
    } else if name == "distance" {
        format!("{v}ms")
    } else {
        v.to_string()
    }
}

/// The policy and its values, readable (`LeastUsed(load=1.0%)`) or `raw` as on the wire
/// (`LeastUsed(load=42949673)`).
pub(crate) fn policy_text(pe: &PoolElement, raw: bool) -> String {
    let p = &pe.policy;
    let name = p
        .policy_type()
        .name()
        .map_or_else(|| format!("{:#010x}", p.policy_type().0), str::to_string);
    let vals: Vec<String> = p
        .value_names()
        .iter()
        .zip(p.values().as_slice())
        .map(|(n, &v)| {
            if raw {
                format!("{n}={v}")
            } else {
                format!("{n}={}", value_text(n, v))
            }
        })
        .collect();
    if vals.is_empty() {
        name
    } else {
        format!("{name}({})", vals.join(","))
    }
}

pub fn run(args: ResolveArgs) -> ExitCode {
    args.asap.init_logging();
    let items = match args.items.as_deref() {
        None => None,
        Some("all") => Some(u32::MAX),
        Some(n) => match n.parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                eprintln!("rserpool resolve: --items {n:?}: a positive number or all");
                return ExitCode::from(2);
            }
        },
    };
    let rt = match common::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rserpool resolve: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let client = match args.asap.start().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("rserpool resolve: {e}");
                return ExitCode::from(2);
            }
        };
        let r = client.resolve(&args.pool, items).await;
        client.close().await;
        match r {
            Ok(pes) => {
                for pe in &pes {
                    if args.json {
                        println!(
                            "{{\"pool\":{:?},\"id\":{},\"home\":{},\"transport\":{:?},\"policy\":{:?},\"life\":{}}}",
                            args.pool.to_string().trim_matches('"'),
                            pe.id.0,
                            pe.home_registrar.0,
                            transport_text(&pe.user_transport),
                            policy_text(pe, true),
                            pe.registration_life
                        );
                    } else {
                        println!(
                            "{:#010x}  {}  {}  home {:#010x}",
                            pe.id.0,
                            transport_text(&pe.user_transport),
                            policy_text(pe, false),
                            pe.home_registrar.0
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            Err(ClientError::UnknownPoolHandle) => {
                eprintln!("rserpool resolve: unknown pool handle {}", args.pool);
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("rserpool resolve: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::value_text;

    #[test]
    fn loads_read_as_per_cent_and_distances_as_ms() {
        assert_eq!(value_text("load", 42_949_673), "1.0%");
        assert_eq!(value_text("load", 0), "0.0%");
        assert_eq!(value_text("load", u32::MAX), "100.0%");
        assert_eq!(value_text("load_degradation", u32::MAX / 2), "50.0%");
        assert_eq!(value_text("load_dpf", u32::MAX / 4), "25.0%");
        assert_eq!(value_text("weight_dpf", u32::MAX / 10), "10.0%");
        assert_eq!(value_text("distance", 42), "42ms");
        assert_eq!(value_text("weight", 5), "5");
        assert_eq!(value_text("priority", 3), "3");
    }
}
