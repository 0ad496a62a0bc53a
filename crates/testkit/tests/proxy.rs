//! TcpProxy against a local echo server: no external services needed.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lottery_testkit::{TcpProxy, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

/// Echoes every connection until EOF; reports how many bytes each connection
/// delivered, so tests can tell exactly what crossed the proxy.
async fn echo_server() -> (SocketAddr, mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind echo server");
    let addr = listener.local_addr().expect("echo server addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut total = 0;
                let mut buf = [0u8; 8192];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            total += n;
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = tx.send(total);
            });
        }
    });
    (addr, rx)
}

async fn roundtrip(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).await.expect("write through proxy");
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(WAIT, stream.read_exact(&mut back))
        .await
        .expect("echo within timeout")
        .expect("read echo through proxy");
    assert_eq!(back, msg);
}

/// Reads until the connection ends; returns the bytes read and whether it
/// ended (EOF or error) rather than timing out.
async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Polls until connecting to `addr` fails, which proves the port is closed.
async fn wait_refused(addr: SocketAddr) -> io::Error {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpStream::connect(addr).await {
            Err(e) => return e,
            Ok(mut s) => {
                // Accepted by a listener still closing; make sure it is dead.
                let (_, closed) = read_until_closed(&mut s).await;
                assert!(closed, "connection accepted and kept alive after cut");
            }
        }
        assert!(Instant::now() < deadline, "port {addr} still accepts");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn forwards_bytes_both_ways_on_many_connections() {
    let (echo, _) = echo_server().await;
    let proxy = TcpProxy::start(echo).await.expect("start proxy");
    assert_eq!(proxy.target(), echo);

    let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(
            TcpStream::connect(proxy.addr())
                .await
                .expect("connect proxy"),
        );
    }
    assert!(proxy.wait_for_connections(3, WAIT).await);
    assert_eq!(proxy.accepted(), 3);

    let runs = clients.into_iter().map(|stream| {
        let payload = payload.clone();
        async move {
            let (mut rd, mut wr) = stream.into_split();
            // Write and read concurrently: the payload exceeds socket buffers.
            let expected = payload.clone();
            let writer = tokio::spawn(async move {
                wr.write_all(&payload).await.expect("write payload");
                wr
            });
            let mut back = vec![0u8; expected.len()];
            tokio::time::timeout(WAIT, rd.read_exact(&mut back))
                .await
                .expect("payload echoed in time")
                .expect("read payload");
            assert!(back == expected, "echoed payload differs");
            writer.await.expect("writer task")
        }
    });
    let writers = futures::future::join_all(runs).await;
    drop(writers);
    assert!(proxy.wait_for_connections(0, WAIT).await);
}

#[tokio::test]
async fn half_close_is_forwarded() {
    let (echo, mut received) = echo_server().await;
    let proxy = TcpProxy::start(echo).await.expect("start proxy");
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    client.write_all(b"hello").await.expect("write");
    client.shutdown().await.expect("shutdown write half");
    let (got, closed) = read_until_closed(&mut client).await;
    assert!(closed);
    assert_eq!(got, b"hello");
    assert_eq!(received.recv().await, Some(5));
}

#[tokio::test]
async fn cut_breaks_live_connections_and_refuses_new_until_restore() {
    let (echo, _) = echo_server().await;
    let proxy = TcpProxy::start(echo).await.expect("start proxy");
    let addr = proxy.addr();

    let mut live = TcpStream::connect(addr).await.expect("connect");
    roundtrip(&mut live, b"ping").await;
    assert!(proxy.wait_for_connections(1, WAIT).await);

    proxy.cut().await;
    assert!(proxy.is_cut());
    assert_eq!(proxy.connections(), 0);

    let (got, closed) = read_until_closed(&mut live).await;
    assert!(closed, "live connection survived the cut");
    assert!(got.is_empty());

    let err = TcpStream::connect(addr)
        .await
        .expect_err("new connection must fail while cut");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);

    // The target itself was never touched.
    let mut direct = TcpStream::connect(echo).await.expect("echo still up");
    roundtrip(&mut direct, b"direct").await;

    proxy.restore().await.expect("restore");
    assert!(!proxy.is_cut());
    assert_eq!(proxy.addr(), addr, "restore keeps the port");
    let mut again = TcpStream::connect(addr)
        .await
        .expect("connect after restore");
    roundtrip(&mut again, b"pong").await;

    // A second cut/restore cycle works too.
    proxy.cut().await;
    wait_refused(addr).await;
    proxy.restore().await.expect("restore again");
    let mut third = TcpStream::connect(addr).await.expect("connect again");
    roundtrip(&mut third, b"third").await;
}

#[tokio::test]
async fn cut_after_tears_the_stream_at_the_byte_budget() {
    let (echo, mut received) = echo_server().await;
    let proxy = TcpProxy::start(echo).await.expect("start proxy");
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    roundtrip(&mut client, b"abcd").await;

    proxy.cut_after(3);
    assert!(!proxy.is_cut(), "arming alone must not cut");
    client.write_all(b"0123456789").await.expect("write");
    let (_, closed) = read_until_closed(&mut client).await;
    assert!(closed, "connection survived cut_after");

    // 4 bytes before arming, then exactly 3 of the 10.
    let delivered = tokio::time::timeout(WAIT, received.recv())
        .await
        .expect("echo server saw the connection end");
    assert_eq!(delivered, Some(7));
    assert!(proxy.is_cut());
    wait_refused(proxy.addr()).await;

    proxy.restore().await.expect("restore");
    let mut again = TcpStream::connect(proxy.addr()).await.expect("connect");
    roundtrip(&mut again, b"after").await;
}

#[tokio::test]
async fn unreachable_target_closes_clients() {
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port().expect("free port")));
    let proxy = TcpProxy::start(dead).await.expect("start proxy");
    let mut client = TcpStream::connect(proxy.addr())
        .await
        .expect("the proxy itself accepts");
    let (got, closed) = read_until_closed(&mut client).await;
    assert!(closed, "client not closed although the target is down");
    assert!(got.is_empty());
}

#[tokio::test]
async fn dropping_the_proxy_closes_port_and_connections() {
    let (echo, _) = echo_server().await;
    let proxy = TcpProxy::start(echo).await.expect("start proxy");
    let addr = proxy.addr();
    let mut client = TcpStream::connect(addr).await.expect("connect");
    roundtrip(&mut client, b"x").await;

    drop(proxy);
    let (_, closed) = read_until_closed(&mut client).await;
    assert!(closed, "connection outlived the proxy");
    wait_refused(addr).await;
}

#[tokio::test]
async fn proxied_url_points_at_the_proxy() {
    let (echo, _) = echo_server().await;
    let proxy = TcpProxy::start(echo).await.expect("start proxy");
    let url = proxy
        .proxied_url("mysql://root:pw@127.0.0.1:3306/db?ssl-mode=disabled")
        .expect("valid url");
    assert_eq!(
        url,
        format!("mysql://root:pw@{}/db?ssl-mode=disabled", proxy.addr())
    );
}

#[tokio::test]
async fn pause_holds_bytes_until_resume() {
    let (target, _) = echo_server().await;
    let proxy = TcpProxy::start(target).await.expect("proxy");
    let mut stream = TcpStream::connect(proxy.addr()).await.expect("connect");
    roundtrip(&mut stream, b"before").await;
    proxy.pause();
    stream.write_all(b"held").await.expect("write");
    let mut back = [0u8; 4];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut back))
            .await
            .is_err(),
        "nothing passes while paused"
    );
    proxy.resume();
    tokio::time::timeout(WAIT, stream.read_exact(&mut back))
        .await
        .expect("delivered after resume")
        .expect("read");
    assert_eq!(&back, b"held");
}

#[tokio::test]
async fn black_hole_drops_bytes_and_keeps_the_connection_open() {
    let (target, mut delivered) = echo_server().await;
    let proxy = TcpProxy::start(target).await.expect("proxy");
    let mut stream = TcpStream::connect(proxy.addr()).await.expect("connect");
    roundtrip(&mut stream, b"ab").await;
    proxy.black_hole();
    stream.write_all(b"lost").await.expect("write");
    let mut back = [0u8; 4];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut back))
            .await
            .is_err(),
        "no answer from a black hole"
    );
    proxy.resume();
    roundtrip(&mut stream, b"after").await;
    drop(stream);
    let total = tokio::time::timeout(WAIT, delivered.recv())
        .await
        .expect("connection ended")
        .expect("count");
    assert_eq!(
        total,
        2 + 5,
        "the black-holed bytes never reached the target"
    );
}

#[tokio::test]
async fn drop_replies_delivers_requests_but_loses_answers() {
    let (target, mut delivered) = echo_server().await;
    let proxy = TcpProxy::start(target).await.expect("proxy");
    let mut stream = TcpStream::connect(proxy.addr()).await.expect("connect");
    proxy.drop_replies();
    stream.write_all(b"request").await.expect("write");
    let mut back = [0u8; 7];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.read_exact(&mut back))
            .await
            .is_err(),
        "the answer is lost"
    );
    drop(stream);
    let total = tokio::time::timeout(WAIT, delivered.recv())
        .await
        .expect("connection ended")
        .expect("count");
    assert_eq!(total, 7, "the request arrived");
}
