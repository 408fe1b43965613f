//! Interop with usrsctp (Debian's `libusrsctp-examples`: another user-space SCTP stack speaking
//! RFC 6951) on 127.0.0.1, both directions. Skipped with a message where the examples are not
//! installed, except in CI (`CI` set), where their absence fails.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use rserpool_sctp::*;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);
const DIR: &str = "/usr/lib/usrsctp";

fn available() -> bool {
    if Path::new(DIR).join("echo_server").exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "usrsctp examples missing in CI (apt-get install libusrsctp-examples)"
    );
    eprintln!("{DIR} not installed: skipping usrsctp interop");
    false
}

/// Fixed UDP ports, so that `interop/usrsctp.sh` can capture and decode the traffic:
/// 29899 usrsctp's echo server, 29898 our client; 29897 usrsctp's client, 29896 our server.
const PORTS: [u16; 4] = [29899, 29898, 29897, 29896];

/// A child process killed when the test ends, however it ends.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn our_client_with_the_usrsctp_echo_server() {
    if !available() {
        return;
    }
    let (theirs, ours) = (PORTS[0], PORTS[1]);
    let _server = Kill(
        Command::new(Path::new(DIR).join("echo_server"))
            .args([theirs.to_string(), ours.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ep = SctpEndpoint::bind(
        SocketAddr::from(([127, 0, 0, 1], ours)),
        EndpointConfig::default(),
    )
    .await
    .unwrap();
    let peer: SocketAddr = SocketAddr::from(([127, 0, 0, 1], theirs));
    // The server needs a moment to bind; retry the association until it answers.
    let mut tries = 0;
    let a = loop {
        match timeout(LIMIT, ep.connect(&[peer], 7)).await.unwrap() {
            Ok(a) => break a,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    // Streams 0-3, PPIDs 11, 12 and 99, up to 8000 bytes (several packets; the echo server
    // reads 10240 bytes at most).
    for i in 0..24usize {
        let len = if i % 6 == 5 { 8000 } else { 1 + i * 37 };
        let data = Bytes::from(vec![b'a' + (i % 26) as u8; len]);
        let (stream, ppid) = ((i % 4) as u16, [11u32, 12, 99][i % 3]);
        a.send(stream, ppid, data.clone()).await.unwrap();
        let m = timeout(LIMIT, a.recv()).await.unwrap().unwrap();
        assert_eq!((m.stream, m.ppid, m.data), (stream, ppid, data), "echo {i}");
    }
    a.shutdown();
    assert_eq!(
        timeout(LIMIT, a.closed_reason()).await.unwrap(),
        Closed::Shutdown
    );
}

#[tokio::test]
async fn the_usrsctp_client_with_our_echo_server() {
    if !available() {
        return;
    }
    let ours = PORTS[3];
    let ep = SctpEndpoint::bind(
        SocketAddr::from(([127, 0, 0, 1], ours)),
        EndpointConfig::default(),
    )
    .await
    .unwrap();
    let mut listener = ep.listen(5001).await.unwrap();
    let server = tokio::spawn(async move {
        let a = listener.accept().await.unwrap();
        let mut n = 0;
        loop {
            match a.recv().await {
                Ok(m) => {
                    n += 1;
                    a.send_with(m.stream, m.ppid, m.unordered, m.data)
                        .await
                        .unwrap();
                }
                Err(e) => return (n, e),
            }
        }
    });
    // client remote_addr remote_port local_port local_encaps_port remote_encaps_port:
    // every stdin line goes out as a message; what comes back is printed.
    let theirs = PORTS[2];
    let mut child = Kill(
        Command::new(Path::new(DIR).join("client"))
            .args([
                "127.0.0.1",
                "5001",
                "0",
                &theirs.to_string(),
                &ours.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lines = ["hello from usrsctp", "second message", "third"];
    let mut stdin = child.0.stdin.take().unwrap();
    let stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            seen.push(line);
        }
        seen
    });
    for l in lines {
        writeln!(stdin, "{l}").unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stdin); // EOF: the client shuts the association down and exits.
    let (n, end) = timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!(n, lines.len());
    assert_eq!(end, Closed::Shutdown);
    let _ = child.0.wait();
    let out = reader.join().unwrap().join("\n");
    for l in lines {
        assert!(
            out.contains(l),
            "echo of {l:?} missing from the client's output:\n{out}"
        );
    }
}
