//! The decoder against the host-crafted stimuli of the RSPLIB corpus (`stimuli.jsonl`):
//! unknown types and parameters by their action bits, broken lengths, odd registrations.

mod common;

use rserpool::wire::{
    AsapMessage, CauseCode, DecodeErrorKind, Message, Policy, PolicyType, Protocol, Transport,
};

fn decode(
    s: &serde_json::Value,
) -> (
    Vec<u8>,
    Result<rserpool::wire::Decoded<Message>, rserpool::wire::DecodeError>,
) {
    let bytes = common::unhex(s["hex"].as_str().unwrap());
    let proto = match s["protocol"].as_str().unwrap() {
        "asap" => Protocol::Asap,
        _ => Protocol::Enrp,
    };
    let r = Message::decode_full(proto, &bytes);
    (bytes, r)
}

#[test]
fn every_stimulus_gets_the_rfc_outcome() {
    let stimuli = common::stimuli();
    assert!(stimuli.len() >= 30);
    let mut checked = 0;
    for s in &stimuli {
        let name = s["name"].as_str().unwrap();
        let (bytes, r) = decode(s);
        match name {
            "asap-hr-unknown-param-stop-report" | "enrp-presence-unknown-param-stop-report" => {
                let e = r.unwrap_err();
                assert!(
                    matches!(
                        e.kind,
                        DecodeErrorKind::UnrecognizedParameter(0x4123 | 0x4124)
                    ),
                    "{name}: {e}"
                );
                let c = e.error_cause().expect("reported");
                assert_eq!(c.code, CauseCode::UNRECOGNIZED_PARAMETER);
                assert_eq!(
                    &c.info[..2],
                    &bytes[e.offset..e.offset + 2],
                    "{name}: echoes the TLV"
                );
                assert_eq!(c.info.len(), 8);
            }
            "asap-hr-unknown-param-stop" => {
                let e = r.unwrap_err();
                assert!(matches!(
                    e.kind,
                    DecodeErrorKind::UnrecognizedParameter(0x0123)
                ));
                assert!(e.error_cause().is_none(), "action bits 00: silent");
            }
            "asap-hr-unknown-param-skip-report" | "asap-hr-unknown-param-skip" => {
                let d = r.unwrap();
                assert_eq!(d.skipped.len(), 1);
                let report = d.unrecognized_report();
                if name.ends_with("report") {
                    let rep = report.expect("bits 11 ask for a report");
                    assert_eq!(rep.causes[0].code, CauseCode::UNRECOGNIZED_PARAMETER);
                    assert_eq!(rep.causes[0].info, common::unhex("c1230008deadbeef"));
                } else {
                    assert!(report.is_none(), "bits 10: skip silently");
                }
                let Message::Asap(AsapMessage::HandleResolution(hr)) = d.message else {
                    panic!()
                };
                assert_eq!(hr.pool_handle.as_bytes(), b"EchoPool");
            }
            "asap-unknown-message-type" | "enrp-unknown-message-type" => {
                let e = r.unwrap_err();
                assert_eq!(e.kind, DecodeErrorKind::UnrecognizedMessage(0x3f));
                assert!(e.error_cause().is_none(), "type bits 00: discard silently");
            }
            "asap-unknown-message-type-report" | "enrp-unknown-message-type-report" => {
                let e = r.unwrap_err();
                assert_eq!(e.kind, DecodeErrorKind::UnrecognizedMessage(0x7f));
                let c = e.error_cause().expect("type bits 01: report");
                assert_eq!(c.code, CauseCode::UNRECOGNIZED_MESSAGE);
                assert_eq!(c.info, bytes);
            }
            "asap-hr-tlv-too-long" | "enrp-presence-tlv-too-long" => {
                let e = r.unwrap_err();
                assert!(
                    matches!(
                        e.kind,
                        DecodeErrorKind::ParameterOverrun { length: 200, .. }
                    ),
                    "{name}: {e}"
                );
                assert!(e.report);
            }
            "asap-hr-msg-length-too-long" | "enrp-msg-length-too-long" => {
                let e = r.unwrap_err();
                assert!(
                    matches!(e.kind, DecodeErrorKind::MessageLengthExceedsData { .. }),
                    "{name}: {e}"
                );
            }
            "asap-hr-empty-pool-handle" => {
                let e = r.unwrap_err();
                let c = e.error_cause().unwrap();
                assert_eq!(c.code, CauseCode::INVALID_VALUES);
                assert_eq!(c.info, common::unhex("00090004"));
            }
            "asap-hr-option-items-5" | "asap-hr-option-items-all" => {
                let Message::Asap(AsapMessage::HandleResolution(hr)) = r.unwrap().message else {
                    panic!()
                };
                assert_eq!(
                    hr.items,
                    Some(if name.ends_with('5') { 5 } else { u32::MAX })
                );
            }
            "asap-reg-unknown-policy" => {
                let Message::Asap(AsapMessage::Registration(reg)) = r.unwrap().message else {
                    panic!()
                };
                assert_eq!(
                    reg.pool_element.policy,
                    Policy::Unknown {
                        policy_type: PolicyType(0x77),
                        data: vec![]
                    }
                );
            }
            "asap-reg-udp-transport" => {
                let Message::Asap(AsapMessage::Registration(reg)) = r.unwrap().message else {
                    panic!()
                };
                assert!(matches!(
                    reg.pool_element.user_transport,
                    Transport::Udp { .. }
                ));
            }
            "asap-reg-no-policy" => {
                let e = r.unwrap_err();
                assert!(
                    matches!(e.kind, DecodeErrorKind::MissingParameter { .. }),
                    "{e}"
                );
                let c = e.error_cause().unwrap();
                assert_eq!(c.code, CauseCode::INVALID_VALUES);
                assert_eq!(c.info[..2], [0x00, 0x0a], "echoes the Pool Element");
            }
            _ => {
                // Every other stimulus is well-formed: it must decode and re-encode unchanged.
                let d = r.unwrap_or_else(|e| panic!("{name}: {e}"));
                let ours = d.message.to_bytes().unwrap();
                if ours != bytes {
                    // The host counted the final padding into the message length (RFC 5354 §4
                    // says not to); the canonical form drops it and means the same.
                    assert_eq!(ours[4..], bytes[4..ours.len()], "{name}");
                    assert!(
                        bytes[ours.len()..].iter().all(|&b| b == 0)
                            && bytes.len() - ours.len() <= 3,
                        "{name}"
                    );
                    assert_eq!(
                        Message::decode(d.message.protocol(), &ours).unwrap(),
                        d.message
                    );
                }
                checked += 1;
                continue;
            }
        }
        checked += 1;
    }
    assert_eq!(checked, stimuli.len());
}
