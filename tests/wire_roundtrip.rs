//! Property tests of the codec: every message and parameter round-trips through encode and
//! decode, and no input — random or a mutated valid message — makes a decoder panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use rserpool::wire::*;

fn pool_handle() -> impl Strategy<Value = PoolHandle> {
    prop::collection::vec(any::<u8>(), 1..40).prop_map(|v| PoolHandle::new(v).unwrap())
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn transport_use() -> impl Strategy<Value = TransportUse> {
    prop_oneof![
        Just(TransportUse::DataOnly),
        Just(TransportUse::DataPlusControl)
    ]
}

fn sctp() -> impl Strategy<Value = SctpTransport> {
    (
        any::<u16>(),
        transport_use(),
        prop::collection::vec(addr(), 1..5),
    )
        .prop_map(|(port, transport_use, addresses)| SctpTransport {
            port,
            transport_use,
            addresses,
        })
}

fn transport() -> impl Strategy<Value = Transport> {
    prop_oneof![
        sctp().prop_map(Transport::Sctp),
        (any::<u16>(), addr()).prop_map(|(port, address)| Transport::Tcp { port, address }),
        (any::<u16>(), addr()).prop_map(|(port, address)| Transport::Udp { port, address }),
        (any::<u16>(), addr()).prop_map(|(port, address)| Transport::UdpLite { port, address }),
        (any::<u16>(), any::<u32>(), addr()).prop_map(|(port, service_code, address)| {
            Transport::Dccp {
                port,
                service_code,
                address,
            }
        }),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Transport::Opaque),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        (
            prop::sample::select(PolicyType::ALL.to_vec()),
            prop::array::uniform4(any::<u32>())
        )
            .prop_map(|(t, v)| Policy::from_values(t, &v[..t.value_count().unwrap()]).unwrap()),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..16))
            .prop_filter("unknown types only", |(t, _)| PolicyType(*t)
                .value_count()
                .is_none())
            .prop_map(|(t, data)| Policy::Unknown {
                policy_type: PolicyType(t),
                data,
            }),
    ]
}

fn pool_element() -> impl Strategy<Value = PoolElement> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<i32>(),
        transport(),
        policy(),
        prop::option::of(sctp()),
    )
        .prop_map(
            |(id, home, life, user_transport, policy, asap_transport)| PoolElement {
                id: PoolElementId(id),
                home_registrar: RegistrarId(home),
                registration_life: life,
                user_transport,
                policy,
                asap_transport,
            },
        )
}

fn operation_error() -> impl Strategy<Value = OperationError> {
    prop::collection::vec(
        (any::<u16>(), prop::collection::vec(any::<u8>(), 0..13)).prop_map(|(c, info)| {
            ErrorCause {
                code: CauseCode(c),
                info,
            }
        }),
        1..4,
    )
    .prop_map(|causes| OperationError { causes })
}

fn server_info() -> impl Strategy<Value = ServerInformation> {
    (any::<u32>(), sctp()).prop_map(|(id, transport)| ServerInformation {
        server_id: RegistrarId(id),
        transport,
    })
}

fn pe_id() -> impl Strategy<Value = PoolElementId> {
    any::<u32>().prop_map(PoolElementId)
}

fn pes() -> impl Strategy<Value = Vec<PoolElement>> {
    prop::collection::vec(pool_element(), 0..4)
}

fn asap() -> impl Strategy<Value = AsapMessage> {
    let opt_err = || prop::option::of(operation_error());
    prop_oneof![
        (pool_handle(), pool_element()).prop_map(|(pool_handle, pool_element)| {
            AsapMessage::Registration(Registration {
                pool_handle,
                pool_element,
            })
        }),
        (pool_handle(), pe_id()).prop_map(|(pool_handle, pe_id)| {
            AsapMessage::Deregistration(Deregistration { pool_handle, pe_id })
        }),
        (any::<bool>(), pool_handle(), pe_id(), opt_err()).prop_map(
            |(reject, pool_handle, pe_id, error)| {
                AsapMessage::RegistrationResponse(RegistrationResponse {
                    reject,
                    pool_handle,
                    pe_id,
                    error,
                })
            }
        ),
        (pool_handle(), pe_id(), opt_err()).prop_map(|(pool_handle, pe_id, error)| {
            AsapMessage::DeregistrationResponse(DeregistrationResponse {
                pool_handle,
                pe_id,
                error,
            })
        }),
        (any::<bool>(), pool_handle(), prop::option::of(any::<u32>())).prop_map(
            |(subscribe, pool_handle, items)| {
                AsapMessage::HandleResolution(HandleResolution {
                    subscribe,
                    pool_handle,
                    items,
                })
            }
        ),
        (
            any::<bool>(),
            pool_handle(),
            prop::option::of(policy()),
            pes(),
            opt_err()
        )
            .prop_map(|(accept_updates, pool_handle, policy, elements, error)| {
                AsapMessage::HandleResolutionResponse(HandleResolutionResponse {
                    accept_updates,
                    pool_handle,
                    policy,
                    elements,
                    error,
                })
            }),
        (
            any::<bool>(),
            any::<u32>(),
            pool_handle(),
            prop::option::of(pe_id())
        )
            .prop_map(|(home, s, pool_handle, pe_id)| {
                AsapMessage::EndpointKeepAlive(EndpointKeepAlive {
                    home,
                    server_id: RegistrarId(s),
                    pool_handle,
                    pe_id,
                })
            }),
        (pool_handle(), pe_id()).prop_map(|(pool_handle, pe_id)| {
            AsapMessage::EndpointKeepAliveAck(EndpointKeepAliveAck { pool_handle, pe_id })
        }),
        (pool_handle(), pe_id()).prop_map(|(pool_handle, pe_id)| {
            AsapMessage::EndpointUnreachable(EndpointUnreachable { pool_handle, pe_id })
        }),
        (
            any::<u32>(),
            prop::collection::vec(
                prop_oneof![
                    sctp().prop_map(Transport::Sctp),
                    (any::<u16>(), addr())
                        .prop_map(|(port, address)| Transport::Tcp { port, address })
                ],
                0..3
            )
        )
            .prop_map(|(s, transports)| {
                AsapMessage::ServerAnnounce(ServerAnnounce {
                    server_id: RegistrarId(s),
                    transports,
                })
            }),
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|cookie| AsapMessage::Cookie(Cookie { cookie })),
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|cookie| AsapMessage::CookieEcho(Cookie { cookie })),
        (pool_handle(), prop::option::of(policy()), pes()).prop_map(
            |(pool_handle, policy, elements)| {
                AsapMessage::BusinessCard(BusinessCard {
                    pool_handle,
                    policy,
                    elements,
                })
            }
        ),
        operation_error().prop_map(|error| AsapMessage::Error(AsapError { error })),
    ]
}

fn ids() -> impl Strategy<Value = ServerIds> {
    (any::<u32>(), any::<u32>()).prop_map(|(s, r)| ServerIds {
        sender: RegistrarId(s),
        receiver: RegistrarId(r),
    })
}

fn enrp() -> impl Strategy<Value = EnrpMessage> {
    prop_oneof![
        (
            ids(),
            any::<bool>(),
            prop::option::of(any::<u16>()),
            prop::option::of(server_info())
        )
            .prop_map(|(ids, reply_required, checksum, server_info)| {
                EnrpMessage::Presence(Presence {
                    ids,
                    reply_required,
                    checksum,
                    server_info,
                })
            }),
        (ids(), any::<bool>()).prop_map(|(ids, own_children_only)| {
            EnrpMessage::HandleTableRequest(HandleTableRequest {
                ids,
                own_children_only,
            })
        }),
        (
            ids(),
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(
                (pool_handle(), pes()).prop_map(|(pool_handle, elements)| PoolEntry {
                    pool_handle,
                    elements
                }),
                0..3
            )
        )
            .prop_map(|(ids, more_to_send, reject, pools)| {
                EnrpMessage::HandleTableResponse(HandleTableResponse {
                    ids,
                    more_to_send,
                    reject,
                    pools,
                })
            }),
        (
            ids(),
            any::<bool>(),
            any::<bool>(),
            pool_handle(),
            pool_element()
        )
            .prop_map(
                |(ids, takeover_suggested, del, pool_handle, pool_element)| {
                    EnrpMessage::HandleUpdate(HandleUpdate {
                        ids,
                        takeover_suggested,
                        action: if del {
                            UpdateAction::DelPe
                        } else {
                            UpdateAction::AddPe
                        },
                        pool_handle,
                        pool_element,
                    })
                }
            ),
        ids().prop_map(EnrpMessage::ListRequest),
        (
            ids(),
            any::<bool>(),
            prop::collection::vec(server_info(), 0..3)
        )
            .prop_map(|(ids, reject, servers)| {
                EnrpMessage::ListResponse(ListResponse {
                    ids,
                    reject,
                    servers,
                })
            }),
        (ids(), any::<u32>(), 0..3u8).prop_map(|(ids, t, which)| {
            let tk = Takeover {
                ids,
                target: RegistrarId(t),
            };
            match which {
                0 => EnrpMessage::InitTakeover(tk),
                1 => EnrpMessage::InitTakeoverAck(tk),
                _ => EnrpMessage::TakeoverServer(tk),
            }
        }),
        (ids(), operation_error())
            .prop_map(|(ids, error)| EnrpMessage::Error(EnrpError { ids, error })),
    ]
}

fn check_roundtrip(m: Message) -> Result<(), TestCaseError> {
    let bytes = m.to_bytes().unwrap();
    // RFC 5354 §4: the message is padded with zeros to a multiple of 4 bytes, and its length
    // field counts everything but that padding.
    prop_assert_eq!(bytes.len() % 4, 0, "message of {} bytes", bytes.len());
    let len = message_length(&bytes).unwrap();
    prop_assert_eq!((len + 3) & !3, bytes.len(), "length field {}", len);
    prop_assert!(bytes[len..].iter().all(|&b| b == 0), "padding not zero");
    let d = Message::decode_full(m.protocol(), &bytes)
        .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert!(d.skipped.is_empty());
    prop_assert_eq!(&d.message, &m);
    // Without the padding (as an unpadding sender sends it), the message decodes the same.
    prop_assert_eq!(Message::decode(m.protocol(), &bytes[..len]).unwrap(), m);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn asap_roundtrips(m in asap()) {
        check_roundtrip(Message::Asap(m))?;
    }

    #[test]
    fn enrp_roundtrips(m in enrp()) {
        check_roundtrip(Message::Enrp(m))?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        for p in [Protocol::Asap, Protocol::Enrp] {
            if let Ok(d) = Message::decode_full(p, &bytes) {
                // Whatever decodes re-encodes and decodes to the same message.
                let again = d.message.to_bytes().unwrap();
                prop_assert_eq!(Message::decode(p, &again).unwrap(), d.message);
            }
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        m in prop_oneof![asap().prop_map(Message::Asap), enrp().prop_map(Message::Enrp)],
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = m.to_bytes().unwrap();
        for (i, b) in edits {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        let cut = cut.index(bytes.len() + 1);
        for p in [Protocol::Asap, Protocol::Enrp] {
            for input in [&bytes[..], &bytes[..cut]] {
                match Message::decode_full(p, input) {
                    Ok(d) => {
                        let again = d.message.to_bytes().unwrap();
                        prop_assert_eq!(Message::decode(p, &again).unwrap(), d.message);
                    }
                    Err(e) => {
                        // An error points into the message and its report fits a message.
                        prop_assert!(e.offset <= input.len());
                        if let Some(c) = e.error_cause() {
                            let err = AsapMessage::Error(AsapError { error: c.into() });
                            prop_assert!(err.to_bytes().is_ok());
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn oversized_messages_are_refused_not_truncated() {
    let big = Transport::Opaque(vec![0; 0xfff0]);
    let pe = PoolElement {
        id: PoolElementId(1),
        home_registrar: RegistrarId(0),
        registration_life: 1,
        user_transport: big,
        policy: Policy::RoundRobin,
        asap_transport: None,
    };
    let m = AsapMessage::Registration(Registration {
        pool_handle: PoolHandle::try_from("p").unwrap(),
        pool_element: pe,
    });
    assert!(matches!(m.to_bytes(), Err(EncodeError::TooLong { .. })));
}

#[test]
fn container_lengths_exclude_the_last_parameters_padding() {
    // A cookie of 5 bytes: the Cookie TLV is 9 bytes, padded to 12; the message counts 4 + 9
    // and is sent padded to 16 (RFC 5354 §4).
    let m = AsapMessage::Cookie(Cookie {
        cookie: b"hello".to_vec(),
    });
    let b = m.to_bytes().unwrap();
    assert_eq!(b, b"\x0b\x00\x00\x0d\x00\x0d\x00\x09hello\0\0\0");
    // A pool element whose user transport ends odd: inner padding counts, the last does not.
    let e = OperationError {
        causes: vec![
            ErrorCause {
                code: CauseCode(1),
                info: vec![1, 2, 3],
            },
            ErrorCause {
                code: CauseCode(3),
                info: vec![4],
            },
        ],
    };
    let b = AsapMessage::Error(AsapError { error: e.clone() })
        .to_bytes()
        .unwrap();
    assert_eq!(
        b,
        [
            0x0e, 0, 0, 0x15, 0, 0x0c, 0, 0x11, 0, 1, 0, 7, 1, 2, 3, 0, 0, 3, 0, 5, 4, 0, 0, 0
        ]
    );
    assert_eq!(
        AsapMessage::decode(&b).unwrap(),
        AsapMessage::Error(AsapError { error: e })
    );
}
