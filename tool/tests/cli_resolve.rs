//! `rserpool resolve` against a registrar that answers with an ASAP Error, as RSPLIB's does for a
//! message it cannot parse: the tool ends after that one answer with the cause, by name, and a
//! non-zero exit, instead of retransmitting until its timeout.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use rserpool::wire::{AsapError, AsapMessage, CauseCode, ErrorCause, OperationError};
use rserpool_sctp::{Closed, EndpointConfig, SctpEndpoint};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Longer than any run of the test needs; a tool that waited for T1 (60 s below) exceeds it.
const LIMIT: Duration = Duration::from_secs(30);

/// This test's well-known UDP port (the other tests use other ones).
const UDP_PORT: u16 = 30431;

/// A registrar on 127.0.0.1 that answers every ASAP message with an Operation Error (cause 3,
/// Invalid Values, with the message's first parameter as RSPLIB echoes the offending TLV).
/// It fronts the host's UDP port, as a registrar does, and reports every message it answered
/// and, last, how the association ended.
async fn refusing_registrar() -> (
    mpsc::UnboundedReceiver<Bytes>,
    tokio::sync::oneshot::Receiver<Closed>,
) {
    let ep = SctpEndpoint::bind_shared(
        SocketAddr::from(([127, 0, 0, 1], UDP_PORT)),
        EndpointConfig::default(),
    )
    .await
    .unwrap();
    assert!(ep.is_front(), "UDP port {UDP_PORT} is taken");
    let mut listener = ep.listen(rserpool::wire::ASAP_PORT).await.unwrap();
    let (answered, rx) = mpsc::unbounded_channel();
    let (ended, ended_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ep = ep;
        let a = listener.accept().await.unwrap();
        loop {
            let m = match a.recv().await {
                Ok(m) => m,
                Err(reason) => {
                    let _ = ended.send(reason);
                    return;
                }
            };
            assert_eq!(m.ppid, 11, "ASAP's PPID");
            let first_tlv = m.data.get(4..).unwrap_or_default();
            let len = first_tlv
                .get(2..4)
                .map_or(0, |l| u16::from_be_bytes([l[0], l[1]]) as usize);
            let error = AsapMessage::Error(AsapError {
                error: OperationError::new(ErrorCause {
                    code: CauseCode::INVALID_VALUES,
                    info: first_tlv[..len.min(first_tlv.len())].to_vec(),
                }),
            });
            a.send(0, 11, Bytes::from(error.to_bytes().unwrap()))
                .await
                .unwrap();
            let _ = answered.send(m.data);
        }
    });
    (rx, ended_rx)
}

#[tokio::test]
async fn resolve_reports_the_registrars_error_cause_at_once() {
    let (mut answered, ended) = refusing_registrar().await;
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rserpool"))
        .args([
            "resolve",
            "LUPool",
            "--announce",
            "off",
            "--local",
            "127.0.0.1",
        ])
        .args(["--registrar", "127.0.0.1:3863", "--t1", "60000"])
        .args(["--udp-port", &UDP_PORT.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = timeout(LIMIT, child.wait_with_output())
        .await
        .expect("rserpool resolve waited for its timeout instead of taking the error")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("refused by the registrar: Invalid Values (0x3)"),
        "{stderr}"
    );
    // One Handle Resolution (of LUPool), answered once: no retransmission.
    let first = answered.try_recv().expect("the registrar got the request");
    assert_eq!(
        AsapMessage::decode(&first).unwrap().name(),
        "ASAP_HANDLE_RESOLUTION"
    );
    assert!(answered.try_recv().is_err(), "a second request was sent");
    // The tool ended its association with a SHUTDOWN before exiting, rather than leaving the
    // registrar to find it dead by heartbeats.
    let how = timeout(LIMIT, ended).await.unwrap().unwrap();
    assert_eq!(how, Closed::Shutdown);
}
