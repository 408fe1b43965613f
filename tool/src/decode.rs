//! `rserpool decode`: ASAP/ENRP messages from hex or from a capture, printed readably or as JSON.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use rserpool::wire::{DecodeError, Message, Protocol};
use rserpool_proto::capture::{CapturedMessage, Carrier, Ports, extract_messages, read_frames};
use rserpool_proto::wire::describe::{Describe, Obj, Value};

#[derive(Clone, Copy, ValueEnum)]
pub enum ProtocolArg {
    /// ASAP (RFC 5352), SCTP PPID 11.
    Asap,
    /// ENRP (RFC 5353), SCTP PPID 12.
    Enrp,
}

/// Options of `rserpool decode`.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  rserpool decode --protocol asap --hex 0a00000811111111
  rserpool decode capture.pcapng
  rserpool decode --json capture.pcap | jq .

Exit status: 0 when every message decodes, 1 when one does not, 2 on bad input or I/O errors.")]
pub struct Args {
    /// The message as hex (spaces, colons and a 0x prefix are ignored); `-` reads it from stdin.
    #[arg(long, conflicts_with = "pcap", requires = "protocol")]
    hex: Option<String>,
    /// Which protocol the hex message is (their type numbers overlap).
    #[arg(long, value_enum)]
    protocol: Option<ProtocolArg>,
    /// A pcap or pcapng capture: every ASAP/ENRP message in it (SCTP PPID 11/12, SCTP over UDP
    /// port 9899, UDP 3863/9901).
    #[arg(value_name = "CAPTURE", required_unless_present = "hex")]
    pcap: Option<PathBuf>,
    /// More UDP ports carrying SCTP (RFC 6951), besides 9899.
    #[arg(long = "sctp-udp-port", value_name = "PORT")]
    sctp_udp_ports: Vec<u16>,
    /// One JSON object per message (JSON Lines).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> ExitCode {
    match run_inner(a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rserpool decode: {e}");
            ExitCode::from(2)
        }
    }
}

/// Returns whether every message decoded.
fn run_inner(a: Args) -> Result<bool, String> {
    let mut out = io::stdout().lock();
    if let Some(hex) = a.hex {
        let hex = if hex == "-" {
            let mut s = String::new();
            io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("reading stdin: {e}"))?;
            s
        } else {
            hex
        };
        let bytes = parse_hex(&hex)?;
        let protocol = match a.protocol.expect("clap requires it") {
            ProtocolArg::Asap => Protocol::Asap,
            ProtocolArg::Enrp => Protocol::Enrp,
        };
        let ok = print(&mut out, a.json, None, protocol, &bytes).map_err(|e| e.to_string())?;
        return Ok(ok);
    }
    let path = a.pcap.expect("clap requires a capture without --hex");
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let frames = read_frames(&data).map_err(|e| format!("{}: {e}", path.display()))?;
    let ports = Ports {
        sctp_udp: a.sctp_udp_ports,
    };
    let msgs = extract_messages(&frames, &ports);
    let mut all_ok = true;
    for m in &msgs {
        all_ok &=
            print(&mut out, a.json, Some(m), m.protocol, &m.payload).map_err(|e| e.to_string())?;
    }
    if !a.json {
        writeln!(
            out,
            "{} frames, {} ASAP/ENRP messages{}",
            frames.len(),
            msgs.len(),
            if all_ok {
                ""
            } else {
                ", some could not be decoded"
            }
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(all_ok)
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':')
        .collect();
    if let Some(bad) = digits.iter().position(|b| !b.is_ascii_hexdigit()) {
        return Err(format!(
            "not a hex digit: {:?} (digit {})",
            digits[bad] as char,
            bad + 1
        ));
    }
    if digits.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    Ok(digits
        .chunks(2)
        .map(|p| {
            let h = |c: u8| (c as char).to_digit(16).expect("checked") as u8;
            (h(p[0]) << 4) | h(p[1])
        })
        .collect())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn carrier_text(c: &Carrier) -> String {
    match c {
        Carrier::Sctp { ppid, stream } => format!("SCTP ppid {ppid} stream {stream}"),
        Carrier::SctpOverUdp {
            ppid,
            stream,
            udp_src,
            udp_dst,
        } => format!("SCTP/UDP {udp_src}->{udp_dst} ppid {ppid} stream {stream}"),
        Carrier::Udp => "UDP".into(),
    }
}

/// Prints one message; returns whether it decoded.
fn print(
    out: &mut impl Write,
    json: bool,
    captured: Option<&CapturedMessage>,
    protocol: Protocol,
    bytes: &[u8],
) -> io::Result<bool> {
    let result = Message::decode_full(protocol, bytes);
    let ok = result.is_ok();
    if json {
        let mut o = Obj::new();
        if let Some(m) = captured {
            o = o
                .set("frame", m.frame)
                .set("src", m.src.to_string())
                .set("dst", m.dst.to_string())
                .set("carrier", carrier_text(&m.carrier));
        }
        o = o
            .set(
                "protocol",
                match protocol {
                    Protocol::Asap => "asap",
                    Protocol::Enrp => "enrp",
                },
            )
            .set("length", bytes.len())
            .set("hex", hex(bytes))
            .set("ok", ok);
        o = match &result {
            Ok(d) => o.set("decoded", d.message.describe()).set(
                "skipped_parameters",
                Value::Array(
                    d.skipped
                        .iter()
                        .map(|s| {
                            Obj::new()
                                .set("offset", s.offset)
                                .set("tlv", hex(&s.tlv))
                                .set("report", s.report)
                                .build()
                        })
                        .collect(),
                ),
            ),
            Err(e) => o.set("error", e.describe()),
        };
        writeln!(out, "{}", o.build().to_json())?;
        return Ok(ok);
    }
    if let Some(m) = captured {
        writeln!(
            out,
            "frame {}: {} -> {} ({})",
            m.frame,
            m.src,
            m.dst,
            carrier_text(&m.carrier)
        )?;
    }
    match result {
        Ok(d) => {
            let m = &d.message;
            let flags = match m {
                Message::Asap(a) => a.flags(),
                Message::Enrp(e) => e.flags(),
            };
            writeln!(
                out,
                "{} (flags {flags:#04x}, {} bytes)",
                m.name(),
                bytes.len()
            )?;
            // The header line says it; the fields follow.
            let body = match m.describe() {
                Value::Object(fields) => Value::Object(
                    fields
                        .into_iter()
                        .filter(|(k, _)| {
                            !matches!(k.as_str(), "protocol" | "message" | "type" | "flags")
                        })
                        .collect(),
                ),
                other => other,
            };
            write!(out, "{}", indent(&body.to_text()))?;
            for s in &d.skipped {
                writeln!(
                    out,
                    "  skipped unknown parameter at offset {}: {}{}",
                    s.offset,
                    hex(&s.tlv),
                    if s.report {
                        " (sender asks for a report)"
                    } else {
                        ""
                    }
                )?;
            }
        }
        Err(e) => write!(out, "{}", indent(&error_text(&e, protocol, bytes)))?,
    }
    writeln!(out)?;
    Ok(ok)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

fn error_text(e: &DecodeError, protocol: Protocol, bytes: &[u8]) -> String {
    let name = match protocol {
        Protocol::Asap => "ASAP",
        Protocol::Enrp => "ENRP",
    };
    let mut s = format!(
        "malformed {name} message ({} bytes): {} at offset {}\n",
        bytes.len(),
        e.kind,
        e.offset
    );
    let at = e.offset.min(bytes.len());
    let end = (at + 16).min(bytes.len());
    s.push_str(&format!(
        "bytes at offset {at}: {}{}\n",
        hex(&bytes[at..end]),
        if end < bytes.len() { "..." } else { "" }
    ));
    match e.error_cause() {
        Some(c) => s.push_str(&format!(
            "a receiver answers with an Operation Error: cause {}{}\n",
            c.code,
            if c.info.is_empty() {
                String::new()
            } else {
                format!(", echoing {}", hex(&c.info))
            }
        )),
        None => s.push_str("a receiver discards it silently (RFC 5354 action bits)\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::parse_hex;

    #[test]
    fn hex_input_forms() {
        assert_eq!(parse_hex("0a 00:00 08").unwrap(), vec![0x0a, 0, 0, 8]);
        assert_eq!(parse_hex("0x0A000008").unwrap(), vec![0x0a, 0, 0, 8]);
        assert!(parse_hex("0a0").unwrap_err().contains("odd"));
        assert!(parse_hex("zz").unwrap_err().contains("not a hex digit"));
    }
}
