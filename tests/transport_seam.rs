//! The transport seam over real UDP sockets on 127.0.0.1: what a message carries (stream, PPID,
//! ordering), readiness without consuming, lifetimes, and send errors that say what went wrong.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use rserpool::transport::{Endpoint, SendError, SendOptions, TransportConfig};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A server endpoint listening on SCTP port 5000 and a client associated with it; each on
/// its own ephemeral UDP port.
async fn pair() -> (
    rserpool::transport::Association,
    rserpool::transport::Association,
) {
    let config = |remote_udp_port| TransportConfig {
        local: LOCALHOST,
        udp_port: 0,
        share_host: false,
        remote_udp_port,
        ..TransportConfig::default()
    };
    let server = Endpoint::bind(&config(0)).await.unwrap();
    let mut listener = server.listen(5000).await.unwrap();
    let client = Endpoint::bind(&config(server.udp_local_addr().port()))
        .await
        .unwrap();
    let a = timeout(
        LIMIT,
        client.connect(&[SocketAddr::new(LOCALHOST, 5000)], 0),
    )
    .await
    .unwrap()
    .unwrap();
    let b = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
    // Each association keeps its endpoint running; the handles can go.
    drop((server, client, listener));
    (a, b)
}

#[tokio::test]
async fn messages_keep_their_stream_ppid_and_ordering() {
    let (a, b) = pair().await;
    assert!(a.send_capacity() > 0);
    assert!(!b.readable());
    for (stream, ppid, unordered) in [(0u16, 11u32, false), (3, 33, false), (2, 99, true)] {
        let opts = SendOptions {
            stream,
            ppid,
            unordered,
            lifetime: None,
        };
        let data = Bytes::from(format!("s{stream} p{ppid}"));
        a.send_message(opts, data.clone()).await.unwrap();
        // Readable before it is taken, and taking it clears that.
        timeout(LIMIT, b.wait_readable()).await.unwrap();
        assert!(b.readable());
        let m = timeout(LIMIT, b.recv_message()).await.unwrap().unwrap();
        assert_eq!(
            (m.stream, m.ppid, m.unordered, m.data),
            (stream, ppid, unordered, data)
        );
        assert!(!b.readable());
    }
    // A lifetime long enough changes nothing on an idle association.
    let opts = SendOptions {
        stream: 1,
        ppid: 12,
        unordered: false,
        lifetime: Some(Duration::from_secs(5)),
    };
    a.try_send_message(opts, Bytes::from_static(b"in time"))
        .unwrap();
    let m = timeout(LIMIT, b.recv_message()).await.unwrap().unwrap();
    assert_eq!(&m.data[..], b"in time");
}

#[tokio::test]
async fn send_errors_say_what_is_wrong() {
    let (a, b) = pair().await;
    let on = |stream| SendOptions {
        stream,
        ppid: 11,
        ..SendOptions::default()
    };
    assert_eq!(
        a.try_send_message(on(60000), Bytes::from_static(b"x")),
        Err(SendError::InvalidStream(60000))
    );
    assert_eq!(
        a.send_message(on(0), Bytes::new()).await,
        Err(SendError::Empty)
    );
    let huge = Bytes::from(vec![0u8; 64 << 20]);
    assert!(matches!(
        a.try_send_message(on(0), huge),
        Err(SendError::TooLarge(_))
    ));
    // Fill the send buffer without letting anything out faster than it is acknowledged: at
    // some point try_send says WouldBlock (send_message would wait).
    let chunk = Bytes::from(vec![7u8; 60000]);
    let mut blocked = false;
    for _ in 0..1000 {
        match a.try_send_message(on(0), chunk.clone()) {
            Ok(()) => {}
            Err(SendError::WouldBlock) => {
                blocked = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(blocked, "the send buffer never filled");
    // After the peer aborts, sending says the association is closed.
    b.abort();
    timeout(LIMIT, a.closed()).await.unwrap();
    assert_eq!(a.send_capacity(), 0);
    assert_eq!(
        a.send_message(on(0), Bytes::from_static(b"late")).await,
        Err(SendError::Closed)
    );
}
