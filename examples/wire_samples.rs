//! Writes one of every ASAP and ENRP message, carrying every RFC 5354 parameter type, every
//! policy type (RFC 5356 and RSPLIB's) and every RFC 5354 error cause, as a pcap of SCTP over
//! UDP (RFC 6951, port 9899; PPID 11 for ASAP, 12 for ENRP), plus the Server Announce and the
//! Presence over UDP multicast as registrars send them.
//!
//! ```text
//! cargo run --example wire-samples -- samples.pcap            # RFC forms only
//! cargo run --example wire-samples -- --rsplib samples.pcap   # plus RSPLIB's extensions
//! tshark -r samples.pcap -d udp.port==9899,sctp               # look at them
//! ../shared/tools/wire-check --strict samples.pcap            # check them
//! ```
//!
//! `--rsplib` adds what RSPLIB sends beyond the RFCs: the Handle Resolution option 0x803f, the PE
//! Identifier in Endpoint Keep-Alive and a policy in the Business Card. wire-check rates those
//! WARN (non-RFC), so that file passes wire-check but not `--strict`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rserpool::wire::*;
use rserpool_proto::capture::{LINKTYPE_ETHERNET, PcapWriter, build};

const PR_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const PR_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const PE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);
const PU: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 20);
/// The PE's user (data) port; its ASAP association to the registrar uses the next port.
const PE_PORT: u16 = 40000;
const PU_PORT: u16 = 40020;
const ID_A: RegistrarId = RegistrarId(0x1111_1111);
const ID_B: RegistrarId = RegistrarId(0x2222_2222);

/// How a sample travels.
#[derive(Clone, Copy)]
enum Route {
    /// SCTP over UDP between two SCTP endpoints (address, SCTP port).
    Sctp((Ipv4Addr, u16), (Ipv4Addr, u16)),
    /// A UDP datagram (multicast announces).
    Udp(SocketAddr, SocketAddr),
}

fn ph(s: &str) -> PoolHandle {
    PoolHandle::try_from(s).expect("valid pool handle")
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().expect("IPv6 literal"))
}

fn sctp(port: u16, transport_use: TransportUse, addresses: &[IpAddr]) -> SctpTransport {
    SctpTransport {
        port,
        transport_use,
        addresses: addresses.to_vec(),
    }
}

fn pe(
    id: u32,
    home: RegistrarId,
    user_transport: Transport,
    policy: Policy,
    with_asap: bool,
) -> PoolElement {
    PoolElement {
        id: PoolElementId(id),
        home_registrar: home,
        registration_life: 300,
        user_transport,
        policy,
        asap_transport: with_asap.then(|| sctp(PE_PORT + 1, TransportUse::DataOnly, &[PE.into()])),
    }
}

/// A policy of every known type, with distinct values.
fn every_policy() -> Vec<Policy> {
    PolicyType::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let i = i as u32;
            let vals = [
                fraction(0.1 * f64::from(i % 10)),
                fraction(0.01 * f64::from(i)),
                fraction(0.25),
                50 + i,
            ];
            let n = t.value_count().expect("known type");
            // Weight / priority fields are small integers, not fractions.
            let mut v = vals[..n].to_vec();
            if matches!(
                *t,
                PolicyType::WEIGHTED_ROUND_ROBIN
                    | PolicyType::WEIGHTED_RANDOM
                    | PolicyType::PRIORITY
                    | PolicyType::WEIGHTED_RANDOM_DPF
            ) {
                v[0] = 1 + i;
            }
            Policy::from_values(*t, &v).expect("known type")
        })
        .collect()
}

/// One user transport of every kind.
fn every_transport(i: usize) -> Transport {
    let a4: IpAddr = PE.into();
    let a6 = v6("2001:db8::10");
    match i % 6 {
        0 => Transport::Sctp(sctp(PE_PORT, TransportUse::DataPlusControl, &[a4, a6])),
        1 => Transport::Tcp {
            port: 8080,
            address: a4,
        },
        2 => Transport::Udp {
            port: 5060,
            address: a6,
        },
        3 => Transport::UdpLite {
            port: 5061,
            address: a4,
        },
        4 => Transport::Dccp {
            port: 5062,
            service_code: 0x5250_4f4c,
            address: a4,
        },
        _ => Transport::Opaque(b"opaque:pe-10".to_vec()),
    }
}

fn cause(code: CauseCode, info: Vec<u8>) -> OperationError {
    OperationError::new(ErrorCause { code, info })
}

fn encoded<F: FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>>(f: F) -> Vec<u8> {
    let mut v = Vec::new();
    f(&mut v).expect("encodes");
    v
}

fn samples(rsplib: bool) -> Vec<(Message, Route)> {
    use Route::*;
    let pe_pr = Sctp((PE, PE_PORT + 1), (PR_A, ASAP_PORT));
    let pr_pe = Sctp((PR_A, ASAP_PORT), (PE, PE_PORT + 1));
    let pu_pr = Sctp((PU, PU_PORT), (PR_A, ASAP_PORT));
    let pr_pu = Sctp((PR_A, ASAP_PORT), (PU, PU_PORT));
    let pe_pu = Sctp((PE, PE_PORT), (PU, PU_PORT));
    let pu_pe = Sctp((PU, PU_PORT), (PE, PE_PORT));
    let a_b = Sctp((PR_A, ENRP_PORT), (PR_B, ENRP_PORT));
    let b_a = Sctp((PR_B, ENRP_PORT), (PR_A, ENRP_PORT));
    let echo = ph("EchoPool");
    let echo_pe = pe(
        0x0e00_0001,
        RegistrarId(0),
        every_transport(0),
        Policy::RoundRobin,
        false,
    );
    let homed = PoolElement {
        home_registrar: ID_A,
        asap_transport: Some(sctp(PE_PORT + 1, TransportUse::DataOnly, &[PE.into()])),
        ..echo_pe.clone()
    };
    let a = |m| Message::Asap(m);
    let e = |m| Message::Enrp(m);
    let ids = |s, r| ServerIds {
        sender: s,
        receiver: r,
    };
    let server = |id, addr: Ipv4Addr, v6addr: &str| ServerInformation {
        server_id: id,
        transport: sctp(
            ENRP_PORT,
            TransportUse::DataOnly,
            &[addr.into(), v6(v6addr)],
        ),
    };

    // One pool per policy type, the PEs using every kind of user transport.
    let pools: Vec<PoolEntry> = every_policy()
        .into_iter()
        .enumerate()
        .map(|(i, policy)| PoolEntry {
            pool_handle: ph(&format!(
                "Pool-{}",
                policy.policy_type().name().unwrap_or("?")
            )),
            elements: vec![pe(
                0x1000_0000 + i as u32,
                ID_A,
                every_transport(i),
                policy,
                true,
            )],
        })
        .collect();
    // A Handle Resolution Response with 32 PEs: larger than one MTU, sent in fragments.
    let big_pool: Vec<PoolElement> = (0..32)
        .map(|i| {
            pe(
                0x2000_0000 + i,
                ID_A,
                every_transport(0),
                Policy::LeastUsed {
                    load: fraction(f64::from(i) / 32.0),
                },
                false,
            )
        })
        .collect();

    let mut v = vec![
        (
            a(AsapMessage::Registration(Registration {
                pool_handle: echo.clone(),
                pool_element: echo_pe.clone(),
            })),
            pe_pr,
        ),
        (
            a(AsapMessage::RegistrationResponse(RegistrationResponse {
                reject: false,
                pool_handle: echo.clone(),
                pe_id: echo_pe.id,
                error: None,
            })),
            pr_pe,
        ),
        (
            a(AsapMessage::HandleResolution(HandleResolution {
                subscribe: false,
                pool_handle: echo.clone(),
                items: None,
            })),
            pu_pr,
        ),
        (
            a(AsapMessage::HandleResolutionResponse(
                HandleResolutionResponse {
                    accept_updates: false,
                    pool_handle: echo.clone(),
                    policy: Some(Policy::RoundRobin),
                    elements: vec![homed.clone()],
                    error: None,
                },
            )),
            pr_pu,
        ),
        (
            a(AsapMessage::HandleResolution(HandleResolution {
                subscribe: true,
                pool_handle: ph("BigPool"),
                items: None,
            })),
            pu_pr,
        ),
        (
            a(AsapMessage::HandleResolutionResponse(
                HandleResolutionResponse {
                    accept_updates: true,
                    pool_handle: ph("BigPool"),
                    policy: Some(Policy::LeastUsed { load: 0 }),
                    elements: big_pool,
                    error: None,
                },
            )),
            pr_pu,
        ),
        (
            a(AsapMessage::HandleResolutionResponse(
                HandleResolutionResponse {
                    accept_updates: false,
                    pool_handle: ph("NoSuchPool"),
                    policy: None,
                    elements: vec![],
                    error: Some(cause(CauseCode::UNKNOWN_POOL_HANDLE, vec![])),
                },
            )),
            pr_pu,
        ),
        (
            a(AsapMessage::EndpointKeepAlive(EndpointKeepAlive {
                home: true,
                server_id: ID_A,
                pool_handle: echo.clone(),
                pe_id: None,
            })),
            pr_pe,
        ),
        (
            a(AsapMessage::EndpointKeepAliveAck(EndpointKeepAliveAck {
                pool_handle: echo.clone(),
                pe_id: echo_pe.id,
            })),
            pe_pr,
        ),
        (
            a(AsapMessage::Cookie(Cookie {
                cookie: b"<rserpool-session-state>".to_vec(),
            })),
            pe_pu,
        ),
        (
            a(AsapMessage::CookieEcho(Cookie {
                cookie: b"<rserpool-session-state>".to_vec(),
            })),
            pu_pe,
        ),
        (
            a(AsapMessage::BusinessCard(BusinessCard {
                pool_handle: echo.clone(),
                policy: None,
                elements: vec![
                    homed.clone(),
                    pe(
                        0x0e00_0002,
                        ID_B,
                        every_transport(1),
                        Policy::RoundRobin,
                        false,
                    ),
                ],
            })),
            pe_pu,
        ),
        (
            a(AsapMessage::EndpointUnreachable(EndpointUnreachable {
                pool_handle: echo.clone(),
                pe_id: PoolElementId(0x0e00_0002),
            })),
            pu_pr,
        ),
        (
            a(AsapMessage::Deregistration(Deregistration {
                pool_handle: echo.clone(),
                pe_id: echo_pe.id,
            })),
            pe_pr,
        ),
        (
            a(AsapMessage::DeregistrationResponse(
                DeregistrationResponse {
                    pool_handle: echo.clone(),
                    pe_id: echo_pe.id,
                    error: None,
                },
            )),
            pr_pe,
        ),
        // Announces, by UDP multicast as registrars send them, and one per transport kind.
        (
            a(AsapMessage::ServerAnnounce(ServerAnnounce {
                server_id: ID_A,
                transports: vec![],
            })),
            Udp(
                SocketAddr::new(PR_A.into(), ASAP_PORT),
                SocketAddr::new(Ipv4Addr::new(239, 0, 0, 50).into(), ASAP_PORT),
            ),
        ),
        (
            a(AsapMessage::ServerAnnounce(ServerAnnounce {
                server_id: ID_A,
                transports: vec![
                    Transport::Sctp(sctp(
                        ASAP_PORT,
                        TransportUse::DataOnly,
                        &[PR_A.into(), v6("::1")],
                    )),
                    Transport::Tcp {
                        port: ASAP_PORT,
                        address: PR_A.into(),
                    },
                ],
            })),
            Udp(
                SocketAddr::new(PR_A.into(), ASAP_PORT),
                SocketAddr::new(Ipv4Addr::new(239, 0, 0, 50).into(), ASAP_PORT),
            ),
        ),
        // ENRP between two registrars.
        (
            e(EnrpMessage::Presence(Presence {
                ids: ids(ID_A, RegistrarId(0)),
                reply_required: false,
                checksum: Some(0xffff),
                server_info: Some(server(ID_A, PR_A, "::1")),
            })),
            Udp(
                SocketAddr::new(PR_A.into(), ENRP_PORT),
                SocketAddr::new(Ipv4Addr::new(239, 0, 0, 51).into(), ENRP_PORT),
            ),
        ),
        (
            e(EnrpMessage::Presence(Presence {
                ids: ids(ID_B, ID_A),
                reply_required: true,
                checksum: Some(0x6ef6),
                server_info: Some(server(ID_B, PR_B, "fe80::2")),
            })),
            b_a,
        ),
        (e(EnrpMessage::ListRequest(ids(ID_B, ID_A))), b_a),
        (
            e(EnrpMessage::ListResponse(ListResponse {
                ids: ids(ID_A, ID_B),
                reject: false,
                servers: vec![server(ID_A, PR_A, "::1"), server(ID_B, PR_B, "fe80::2")],
            })),
            a_b,
        ),
        (
            e(EnrpMessage::HandleTableRequest(HandleTableRequest {
                ids: ids(ID_B, ID_A),
                own_children_only: false,
            })),
            b_a,
        ),
        (
            e(EnrpMessage::HandleTableResponse(HandleTableResponse {
                ids: ids(ID_A, ID_B),
                more_to_send: true,
                reject: false,
                pools: pools[..9].to_vec(),
            })),
            a_b,
        ),
        (
            e(EnrpMessage::HandleTableRequest(HandleTableRequest {
                ids: ids(ID_B, ID_A),
                own_children_only: true,
            })),
            b_a,
        ),
        (
            e(EnrpMessage::HandleTableResponse(HandleTableResponse {
                ids: ids(ID_A, ID_B),
                more_to_send: false,
                reject: false,
                pools: pools[9..].to_vec(),
            })),
            a_b,
        ),
        (
            e(EnrpMessage::HandleTableResponse(HandleTableResponse {
                ids: ids(ID_B, ID_A),
                more_to_send: false,
                reject: true,
                pools: vec![],
            })),
            b_a,
        ),
        (
            e(EnrpMessage::HandleUpdate(HandleUpdate {
                ids: ids(ID_A, RegistrarId(0)),
                takeover_suggested: false,
                action: UpdateAction::AddPe,
                pool_handle: echo.clone(),
                pool_element: homed.clone(),
            })),
            a_b,
        ),
        (
            e(EnrpMessage::HandleUpdate(HandleUpdate {
                ids: ids(ID_A, ID_B),
                takeover_suggested: true,
                action: UpdateAction::AddPe,
                pool_handle: echo.clone(),
                pool_element: homed.clone(),
            })),
            a_b,
        ),
        (
            e(EnrpMessage::HandleUpdate(HandleUpdate {
                ids: ids(ID_A, RegistrarId(0)),
                takeover_suggested: false,
                action: UpdateAction::DelPe,
                pool_handle: echo.clone(),
                pool_element: homed.clone(),
            })),
            a_b,
        ),
        (
            e(EnrpMessage::InitTakeover(Takeover {
                ids: ids(ID_B, ID_A),
                target: RegistrarId(0x3333_3333),
            })),
            b_a,
        ),
        (
            e(EnrpMessage::InitTakeoverAck(Takeover {
                ids: ids(ID_A, ID_B),
                target: RegistrarId(0x3333_3333),
            })),
            a_b,
        ),
        (
            e(EnrpMessage::TakeoverServer(Takeover {
                ids: ids(ID_B, ID_A),
                target: RegistrarId(0x3333_3333),
            })),
            b_a,
        ),
    ];

    // Every RFC 5354 error cause, each with the cause-specific information its section defines.
    // An unrecognized parameter as a future extension would look: type 0xc001 (action bits 11,
    // "skip and report"), which no RFC 5354 receiver knows.
    let unknown_tlv = vec![0xc0, 0x01, 0x00, 0x08, 0xc0, 0x00, 0x02, 0x01];
    let pool_policy = encoded(|out| {
        let e = ErrorCause::inconsistent_policy(&Policy::RoundRobin)?;
        out.extend_from_slice(&e.info);
        Ok(())
    });
    let pool_transport = ErrorCause::inconsistent_transport(&every_transport(0))
        .expect("encodes")
        .info;
    let bad_ph = vec![0x00, 0x09, 0x00, 0x04];
    let unknown_msg = vec![0x7f, 0x00, 0x00, 0x04];
    let rejected = |code: CauseCode, info: Vec<u8>| {
        a(AsapMessage::RegistrationResponse(RegistrationResponse {
            reject: true,
            pool_handle: echo.clone(),
            pe_id: PoolElementId(0x0e00_00ff),
            error: Some(cause(code, info)),
        }))
    };
    v.extend([
        (rejected(CauseCode::NON_UNIQUE_PE_IDENTIFIER, vec![]), pr_pe),
        (
            rejected(CauseCode::INCONSISTENT_POOLING_POLICY, pool_policy),
            pr_pe,
        ),
        (rejected(CauseCode::LACK_OF_RESOURCES, vec![]), pr_pe),
        (
            rejected(CauseCode::INCONSISTENT_TRANSPORT_TYPE, pool_transport),
            pr_pe,
        ),
        (
            rejected(CauseCode::INCONSISTENT_DATA_CONTROL_CONFIGURATION, vec![]),
            pr_pe,
        ),
        (rejected(CauseCode::REJECTED_SECURITY, vec![]), pr_pe),
        (
            a(AsapMessage::DeregistrationResponse(
                DeregistrationResponse {
                    pool_handle: echo.clone(),
                    pe_id: PoolElementId(0x0e00_00ff),
                    error: Some(cause(CauseCode::UNSPECIFIED, vec![])),
                },
            )),
            pr_pe,
        ),
        (
            a(AsapMessage::Error(AsapError {
                error: OperationError {
                    causes: vec![
                        ErrorCause {
                            code: CauseCode::UNRECOGNIZED_PARAMETER,
                            info: unknown_tlv.clone(),
                        },
                        ErrorCause {
                            code: CauseCode::INVALID_VALUES,
                            info: bad_ph,
                        },
                    ],
                },
            })),
            pr_pu,
        ),
        (
            a(AsapMessage::Error(AsapError {
                error: cause(CauseCode::UNRECOGNIZED_MESSAGE, unknown_msg),
            })),
            pr_pu,
        ),
        (
            e(EnrpMessage::Error(EnrpError {
                ids: ids(ID_A, ID_B),
                error: cause(CauseCode::UNRECOGNIZED_PARAMETER, unknown_tlv),
            })),
            a_b,
        ),
    ]);

    if rsplib {
        v.extend([
            (
                a(AsapMessage::HandleResolution(HandleResolution {
                    subscribe: false,
                    pool_handle: echo.clone(),
                    items: Some(1),
                })),
                pu_pr,
            ),
            (
                a(AsapMessage::EndpointKeepAlive(EndpointKeepAlive {
                    home: false,
                    server_id: ID_A,
                    pool_handle: echo.clone(),
                    pe_id: Some(echo_pe.id),
                })),
                pr_pe,
            ),
            (
                a(AsapMessage::BusinessCard(BusinessCard {
                    pool_handle: echo.clone(),
                    policy: Some(Policy::RoundRobin),
                    elements: vec![homed],
                })),
                pe_pu,
            ),
        ]);
    }
    v
}

/// Largest DATA payload per packet: a 1500-byte MTU minus IPv4, UDP, SCTP and DATA headers.
const MAX_FRAGMENT: usize = 1500 - 20 - 8 - 12 - 16;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let rsplib = if let Some(i) = args.iter().position(|a| a == "--rsplib") {
        args.remove(i);
        true
    } else {
        false
    };
    let [path] = args.as_slice() else {
        eprintln!("usage: wire-samples [--rsplib] FILE.pcap");
        std::process::exit(2);
    };
    let file = std::fs::File::create(path).unwrap_or_else(|e| {
        eprintln!("wire-samples: {path}: {e}");
        std::process::exit(2);
    });
    let mut w = PcapWriter::new(std::io::BufWriter::new(file), LINKTYPE_ETHERNET)
        .expect("write pcap header");
    // Per direction of an association: the next TSN and the next SSN of stream 0.
    let mut seq: std::collections::HashMap<(u16, u16, Ipv4Addr), (u32, u16)> = Default::default();
    let mut time_us: u64 = 1_790_000_000_000_000;
    let mut count = 0;
    for (msg, route) in samples(rsplib) {
        let bytes = msg.to_bytes().expect("samples encode");
        let ppid = msg.protocol().ppid();
        let mut packets = Vec::new();
        match route {
            Route::Udp(src, dst) => packets.push(build::ip_udp(src, dst, &bytes)),
            Route::Sctp((sa, sp), (da, dp)) => {
                let (next, ssn) = seq.entry((sp, dp, sa)).or_insert((1, 0));
                let frags: Vec<&[u8]> = bytes.chunks(MAX_FRAGMENT).collect();
                let n = frags.len();
                for (i, frag) in frags.into_iter().enumerate() {
                    let flags = (if i == 0 { 2 } else { 0 }) | u8::from(i + 1 == n);
                    // Fragments of one message share its stream sequence number.
                    let chunk = build::data_chunk_flags(flags, *next, 0, *ssn, ppid, frag);
                    *next += 1;
                    // Each direction of each association gets its own verification tag.
                    let vtag = u32::from(sa.octets()[3]) << 24 | u32::from(sp) << 8 ^ u32::from(dp);
                    let sctp = build::sctp_packet(sp, dp, vtag, &[chunk]);
                    packets.push(build::ip_udp(
                        SocketAddr::new(sa.into(), SCTP_UDP_PORT),
                        SocketAddr::new(da.into(), SCTP_UDP_PORT),
                        &sctp,
                    ));
                }
                *ssn = ssn.wrapping_add(1);
            }
        }
        for p in packets {
            w.write_frame(time_us, &build::ethernet(&p))
                .expect("write frame");
            time_us += 1000;
        }
        count += 1;
    }
    w.finish().expect("flush");
    println!("wrote {count} messages to {path}");
}
