//! The tokio driver over real UDP sockets on 127.0.0.1.

use std::time::Duration;

use bytes::Bytes;
use rserpool_sctp::*;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

async fn endpoint(cfg: EndpointConfig) -> SctpEndpoint {
    SctpEndpoint::bind("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_gets_every_message_in_order_can_answer_from_inside_and_hears_the_end() {
    let server = endpoint(EndpointConfig::default()).await;
    let mut listener = server.listen(3864).await.unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let srv = tokio::spawn(async move {
        let a = std::sync::Arc::new(listener.accept().await.unwrap());
        // The sink echoes from inside the driver, and reports what it got.
        let echo = a.clone();
        a.set_sink(move |d| match d {
            Delivery::Messages(batch) => {
                assert!(!batch.is_empty(), "an empty batch");
                for m in batch {
                    echo.try_send(m.stream, m.ppid, m.unordered, m.data.clone())
                        .unwrap();
                    let _ = seen_tx.send(Ok(m.data));
                }
            }
            Delivery::Ended(c) => {
                let _ = seen_tx.send(Err(c));
            }
        });
        // With a sink, recv gets nothing.
        assert!(timeout(Duration::from_millis(200), a.recv()).await.is_err());
        a
    });
    let client = endpoint(EndpointConfig::default()).await;
    let a = timeout(LIMIT, client.connect(&[server.local_addr()], 3864))
        .await
        .unwrap()
        .unwrap();
    // Sent while the server sets its sink: all arrive there, in order.
    for i in 0..200u32 {
        a.send(0, 99, Bytes::from(i.to_be_bytes().to_vec()))
            .await
            .unwrap();
    }
    let kept = timeout(LIMIT, srv).await.unwrap().unwrap();
    for i in 0..200u32 {
        let want = Bytes::from(i.to_be_bytes().to_vec());
        let m = timeout(LIMIT, a.recv()).await.unwrap().unwrap();
        assert_eq!(m.data, want, "echo {i}");
        let got = timeout(LIMIT, seen.recv()).await.unwrap().unwrap();
        assert_eq!(got.unwrap(), want, "sink {i}");
    }
    // The end reaches the sink once, after the messages.
    a.shutdown();
    let end = timeout(LIMIT, seen.recv()).await.unwrap().unwrap();
    assert_eq!(end, Err(Closed::Shutdown));
    drop(kept);
    assert!(timeout(LIMIT, seen.recv()).await.unwrap().is_none());
}

#[tokio::test]
async fn echo_over_udp_with_streams_ppids_and_large_messages() {
    let server = endpoint(EndpointConfig::default()).await;
    let mut listener = server.listen(3863).await.unwrap();
    let srv = tokio::spawn(async move {
        let a = listener.accept().await.unwrap();
        // Echo every message back on its stream with its PPID until the peer shuts down.
        loop {
            match a.recv().await {
                Ok(m) => a
                    .send_with(m.stream, m.ppid, m.unordered, m.data)
                    .await
                    .unwrap(),
                Err(Closed::Shutdown) => return,
                Err(e) => panic!("{e}"),
            }
        }
    });
    let client = endpoint(EndpointConfig::default()).await;
    let a = timeout(LIMIT, client.connect(&[server.local_addr()], 3863))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.info().unwrap().state, State::Established);
    let mut sizes: Vec<usize> = (1..200).collect();
    sizes.extend([1500, 9000, 65536, 300_000]);
    for (i, &n) in sizes.iter().enumerate() {
        let data = Bytes::from(vec![(i % 251) as u8; n]);
        let (stream, ppid) = ((i % 8) as u16, [11, 12, 99][i % 3]);
        a.send(stream, ppid, data.clone()).await.unwrap();
        let m = timeout(LIMIT, a.recv())
            .await
            .unwrap_or_else(|_| panic!("echo {i} of {n} bytes: {:?}", a.info()))
            .unwrap();
        assert_eq!((m.stream, m.ppid, m.data.len()), (stream, ppid, n));
        assert_eq!(m.data, data);
    }
    a.shutdown();
    assert_eq!(
        timeout(LIMIT, a.closed_reason()).await.unwrap(),
        Closed::Shutdown
    );
    timeout(LIMIT, srv).await.unwrap().unwrap();
}

#[tokio::test]
async fn closing_an_endpoint_aborts_its_associations() {
    let cfg = EndpointConfig {
        association: AssociationConfig::fast_failover(),
        ..EndpointConfig::default()
    };
    let server = endpoint(cfg.clone()).await;
    let mut listener = server.listen(5000).await.unwrap();
    let client = endpoint(cfg).await;
    let a = timeout(LIMIT, client.connect(&[server.local_addr()], 5000))
        .await
        .unwrap()
        .unwrap();
    let _incoming = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
    // The server shuts down its endpoint: its associations are aborted.
    server.close();
    drop(_incoming);
    drop(listener);
    drop(server);
    let started = std::time::Instant::now();
    let reason = timeout(LIMIT, a.closed_reason()).await.unwrap();
    // Closing aborted the association: the client hears the ABORT at once.
    assert!(
        matches!(reason, Closed::Lost(LostReason::PeerAbort(_))),
        "{reason:?}"
    );
    assert!(started.elapsed() < LIMIT);
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_with_the_peers_abort() {
    let server = endpoint(EndpointConfig::default()).await;
    let client = endpoint(EndpointConfig::default()).await;
    let r = timeout(LIMIT, client.connect(&[server.local_addr()], 4444))
        .await
        .unwrap();
    assert!(
        matches!(r, Err(ConnectFailed::Lost(LostReason::PeerAbort(_)))),
        "{r:?}"
    );
}

#[tokio::test]
async fn many_associations_share_one_socket() {
    let server = endpoint(EndpointConfig::default()).await;
    let mut l1 = server.listen(3863).await.unwrap();
    let mut l2 = server.listen(9901).await.unwrap();
    let srv = tokio::spawn(async move {
        let mut n = 0;
        while n < 20 {
            let a = tokio::select! {
                a = l1.accept() => a.unwrap(),
                a = l2.accept() => a.unwrap(),
            };
            tokio::spawn(async move {
                while let Ok(m) = a.recv().await {
                    a.send(m.stream, m.ppid, m.data).await.unwrap();
                }
            });
            n += 1;
        }
    });
    let client = endpoint(EndpointConfig::default()).await;
    let mut assocs = Vec::new();
    for i in 0..20 {
        let port = if i % 2 == 0 { 3863 } else { 9901 };
        assocs.push(
            timeout(LIMIT, client.connect(&[server.local_addr()], port))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    for (i, a) in assocs.iter().enumerate() {
        a.send(0, 11, Bytes::from(format!("assoc {i}")))
            .await
            .unwrap();
    }
    for (i, a) in assocs.iter().enumerate() {
        let m = timeout(LIMIT, a.recv()).await.unwrap().unwrap();
        assert_eq!(m.data, Bytes::from(format!("assoc {i}")));
    }
    assert_eq!(client.association_count(), 20);
    timeout(LIMIT, srv).await.unwrap().unwrap();
}

/// Forwards UDP between a client and `to` until `cut` is set, then drops everything (a link
/// that fails, or a peer that hangs).
async fn relay(
    to: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::net::SocketAddr {
    use std::sync::atomic::Ordering;
    use tokio::net::UdpSocket;
    let front = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = front.local_addr().unwrap();
    let client = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (f, b, c, k) = (front.clone(), back.clone(), client.clone(), cut.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = f.recv_from(&mut buf).await {
            *c.lock().unwrap() = Some(from);
            if !k.load(Ordering::Relaxed) {
                let _ = b.send_to(&buf[..n], to).await;
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, _)) = back.recv_from(&mut buf).await {
            let dst = *client.lock().unwrap();
            if let Some(dst) = dst {
                if !cut.load(Ordering::Relaxed) {
                    let _ = front.send_to(&buf[..n], dst).await;
                }
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_silent_peer_is_reported_unreachable() {
    let cfg = EndpointConfig {
        association: AssociationConfig::fast_failover(),
        ..EndpointConfig::default()
    };
    let server = endpoint(cfg.clone()).await;
    let _listener = server.listen(5000).await.unwrap();
    let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let via = relay(server.local_addr(), cut.clone()).await;
    let client = endpoint(cfg).await;
    let a = timeout(LIMIT, client.connect(&[via], 5000))
        .await
        .unwrap()
        .unwrap();
    let mut events = a.events().unwrap();
    // Packets stop flowing both ways, without any ABORT: only heartbeats can tell.
    cut.store(true, std::sync::atomic::Ordering::Relaxed);
    let reason = timeout(LIMIT, a.closed_reason()).await.unwrap();
    assert_eq!(reason, Closed::Lost(LostReason::Unreachable));
    let mut saw_path_down = false;
    while let Ok(e) = events.try_recv() {
        saw_path_down |= matches!(
            e,
            Event::PathChanged {
                state: PathState::Inactive,
                ..
            }
        );
    }
    assert!(saw_path_down, "the path was reported inactive first");
}
