//! The codec against real RSPLIB 3.4.4 traffic (`../shared/vectors/rsplib-3.4.4/`).

mod common;

use rserpool::wire::{Message, Protocol};

fn protocol(p: &str) -> Protocol {
    match p {
        "asap" => Protocol::Asap,
        "enrp" => Protocol::Enrp,
        other => panic!("unknown protocol {other}"),
    }
}

#[test]
fn every_rsplib_message_decodes_and_reencodes_byte_identical() {
    let vectors = common::rsplib_messages();
    assert!(vectors.len() > 600, "corpus has {} messages", vectors.len());
    let mut failures = Vec::new();
    for v in &vectors {
        match Message::decode_full(protocol(&v.protocol), &v.bytes) {
            Err(e) => failures.push(format!("{}: decode failed: {e}", v.id)),
            Ok(d) => {
                assert!(d.skipped.is_empty(), "{}: skipped {:?}", v.id, d.skipped);
                let again = d.message.to_bytes().expect("encode");
                if again != v.bytes {
                    failures.push(format!(
                        "{}: re-encoding differs\n  rsplib {}\n  ours   {}",
                        v.id,
                        hex(&v.bytes),
                        hex(&again)
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Field-by-field cross-check against the corpus's own, independent decoder (`decode` in
// messages.jsonl): the same facts, in the same wire order.

use rserpool::wire::{
    AsapMessage, EnrpMessage, OperationError, Policy, PoolElement, PoolHandle, SctpTransport,
    ServerInformation, Transport, TransportUse, UpdateAction,
};

const FACT_KEYS: &[&str] = &[
    "sender_server_id",
    "receiver_server_id",
    "server_identifier",
    "target_server_id",
    "update_action",
    "pool_handle",
    "pe_identifier",
    "home_enrp_server",
    "registration_life",
    "port",
    "transport_use",
    "address",
    "policy_type",
    "load",
    "load_degradation",
    "load_dpf",
    "weight",
    "weight_dpf",
    "distance",
    "priority",
    "pe_checksum",
    "cause",
    "info_hex",
    "cookie_hex",
    "items",
];

fn their_facts(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                if FACT_KEYS.contains(&k.as_str()) && !x.is_object() && !x.is_array() {
                    let s = match x {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    out.push((k.clone(), s));
                } else {
                    their_facts(x, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| their_facts(x, out)),
        _ => {}
    }
}

struct Facts(Vec<(String, String)>);

impl Facts {
    fn push(&mut self, k: &str, v: impl ToString) {
        self.0.push((k.to_owned(), v.to_string()));
    }
    fn id(&mut self, k: &str, v: u32) {
        self.push(k, format!("{v:#010x}"));
    }
    fn ph(&mut self, h: &PoolHandle) {
        self.push("pool_handle", String::from_utf8_lossy(h.as_bytes()));
    }
    fn sctp(&mut self, t: &SctpTransport) {
        self.push("port", t.port);
        self.push(
            "transport_use",
            match t.transport_use {
                TransportUse::DataOnly => 0,
                TransportUse::DataPlusControl => 1,
            },
        );
        for a in &t.addresses {
            self.push("address", a);
        }
    }
    fn transport(&mut self, t: &Transport) {
        match t {
            Transport::Sctp(s) => self.sctp(s),
            other => panic!("RSPLIB sends only SCTP transports, got {other:?}"),
        }
    }
    fn policy(&mut self, p: &Policy) {
        self.push("policy_type", format!("{:#010x}", p.policy_type().0));
        for (n, v) in p.value_names().iter().zip(p.values().iter()) {
            self.push(n, v);
        }
    }
    fn pe(&mut self, pe: &PoolElement) {
        self.id("pe_identifier", pe.id.0);
        self.id("home_enrp_server", pe.home_registrar.0);
        self.push("registration_life", pe.registration_life);
        self.transport(&pe.user_transport);
        self.policy(&pe.policy);
        if let Some(t) = &pe.asap_transport {
            self.sctp(t);
        }
    }
    fn server(&mut self, s: &ServerInformation) {
        self.id("server_identifier", s.server_id.0);
        self.sctp(&s.transport);
    }
    fn error(&mut self, e: &OperationError) {
        for c in &e.causes {
            self.push("cause", format!("{:#06x}", c.code.0));
            self.push("info_hex", hex(&c.info));
        }
    }
    fn asap(&mut self, m: &AsapMessage) {
        match m {
            AsapMessage::Registration(m) => {
                self.ph(&m.pool_handle);
                self.pe(&m.pool_element);
            }
            AsapMessage::Deregistration(m) => {
                self.ph(&m.pool_handle);
                self.id("pe_identifier", m.pe_id.0);
            }
            AsapMessage::RegistrationResponse(m) => {
                self.ph(&m.pool_handle);
                self.id("pe_identifier", m.pe_id.0);
                m.error.iter().for_each(|e| self.error(e));
            }
            AsapMessage::DeregistrationResponse(m) => {
                self.ph(&m.pool_handle);
                self.id("pe_identifier", m.pe_id.0);
                m.error.iter().for_each(|e| self.error(e));
            }
            AsapMessage::HandleResolution(m) => {
                self.ph(&m.pool_handle);
                m.items.iter().for_each(|i| self.push("items", i));
            }
            AsapMessage::HandleResolutionResponse(m) => {
                self.ph(&m.pool_handle);
                m.policy.iter().for_each(|p| self.policy(p));
                m.elements.iter().for_each(|p| self.pe(p));
                m.error.iter().for_each(|e| self.error(e));
            }
            AsapMessage::EndpointKeepAlive(m) => {
                self.id("server_identifier", m.server_id.0);
                self.ph(&m.pool_handle);
                m.pe_id.iter().for_each(|i| self.id("pe_identifier", i.0));
            }
            AsapMessage::EndpointKeepAliveAck(m) => {
                self.ph(&m.pool_handle);
                self.id("pe_identifier", m.pe_id.0);
            }
            AsapMessage::EndpointUnreachable(m) => {
                self.ph(&m.pool_handle);
                self.id("pe_identifier", m.pe_id.0);
            }
            AsapMessage::ServerAnnounce(m) => {
                self.id("server_identifier", m.server_id.0);
                m.transports.iter().for_each(|t| self.transport(t));
            }
            AsapMessage::Cookie(c) | AsapMessage::CookieEcho(c) => {
                self.push("cookie_hex", hex(&c.cookie))
            }
            AsapMessage::BusinessCard(m) => {
                self.ph(&m.pool_handle);
                m.policy.iter().for_each(|p| self.policy(p));
                m.elements.iter().for_each(|p| self.pe(p));
            }
            AsapMessage::Error(m) => self.error(&m.error),
        }
    }
    fn enrp(&mut self, m: &EnrpMessage) {
        let ids = m.ids();
        self.id("sender_server_id", ids.sender.0);
        self.id("receiver_server_id", ids.receiver.0);
        match m {
            EnrpMessage::Presence(p) => {
                p.checksum
                    .iter()
                    .for_each(|c| self.push("pe_checksum", format!("{c:#06x}")));
                p.server_info.iter().for_each(|s| self.server(s));
            }
            EnrpMessage::HandleTableRequest(_) | EnrpMessage::ListRequest(_) => {}
            EnrpMessage::HandleTableResponse(r) => {
                for e in &r.pools {
                    self.ph(&e.pool_handle);
                    e.elements.iter().for_each(|p| self.pe(p));
                }
            }
            EnrpMessage::HandleUpdate(u) => {
                self.push(
                    "update_action",
                    match u.action {
                        UpdateAction::AddPe => "ADD_PE",
                        UpdateAction::DelPe => "DEL_PE",
                    },
                );
                self.ph(&u.pool_handle);
                self.pe(&u.pool_element);
            }
            EnrpMessage::ListResponse(r) => r.servers.iter().for_each(|s| self.server(s)),
            EnrpMessage::InitTakeover(t)
            | EnrpMessage::InitTakeoverAck(t)
            | EnrpMessage::TakeoverServer(t) => self.id("target_server_id", t.target.0),
            EnrpMessage::Error(e) => self.error(&e.error),
        }
    }
}

#[test]
fn decoded_fields_match_the_corpus_decoder() {
    for v in common::rsplib_messages() {
        let mut theirs = Vec::new();
        their_facts(&v.json["decode"], &mut theirs);
        let mut ours = Facts(Vec::new());
        match Message::decode(protocol(&v.protocol), &v.bytes).unwrap() {
            Message::Asap(m) => ours.asap(&m),
            Message::Enrp(m) => ours.enrp(&m),
        }
        assert_eq!(ours.0, theirs, "{}", v.id);
        // Flags too.
        let flags = u8::from_str_radix(
            v.json["decode"]["flags"]
                .as_str()
                .unwrap()
                .trim_start_matches("0x"),
            16,
        )
        .unwrap();
        let msg = Message::decode(protocol(&v.protocol), &v.bytes).unwrap();
        let ours_flags = match &msg {
            Message::Asap(m) => m.flags(),
            Message::Enrp(m) => m.flags(),
        };
        assert_eq!(ours_flags, flags, "{} flags", v.id);
    }
}
