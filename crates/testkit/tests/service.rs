//! Service checks, and the proxy in front of the real Redis and RabbitMQ.

use std::time::Duration;

use lottery_testkit::{Service, TcpProxy, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
#[should_panic(expected = "needs MariaDB at 127.0.0.1:")]
async fn require_panics_when_nothing_listens() {
    let port = free_port().expect("free port");
    Service::MariaDb
        .require_url(&format!("mysql://root@127.0.0.1:{port}"))
        .await;
}

#[tokio::test]
async fn check_explains_what_is_missing_and_how_to_fix_it() {
    let port = free_port().expect("free port");
    let err = Service::Redis
        .check_url(&format!("redis://127.0.0.1:{port}"))
        .await
        .expect_err("nothing listens there");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "needs Redis at 127.0.0.1:{port}: connection refused; start it with `"
        )),
        "{msg}"
    );
    assert!(msg.ends_with("or set LOTTERY_TEST_REDIS_URL"), "{msg}");
}

#[tokio::test]
async fn unparsable_url_is_reported_not_ignored() {
    let err = Service::RabbitMq
        .check_url("not a url")
        .await
        .expect_err("cannot be reachable");
    assert!(err.to_string().starts_with("needs RabbitMQ at not a url:"));
}

#[tokio::test]
#[ignore = "needs MariaDB, Redis and RabbitMQ on 127.0.0.1"]
async fn local_services_are_reachable() {
    for service in Service::ALL {
        let url = service.require().await;
        assert_eq!(url, service.url());
    }
}

async fn redis_ping(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    stream.write_all(b"PING\r\n").await?;
    let mut buf = [0u8; 7];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("no PONG in time"))??;
    Ok(buf.to_vec())
}

#[tokio::test]
#[ignore = "needs Redis at 127.0.0.1:6379 (LOTTERY_TEST_REDIS_URL)"]
async fn redis_behind_a_cut_proxy_is_down_for_its_clients_only() {
    Service::Redis.require().await;
    let proxy = TcpProxy::for_service(Service::Redis)
        .await
        .expect("proxy for redis");
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert_eq!(redis_ping(&mut client).await.expect("ping"), b"+PONG\r\n");

    proxy.cut().await;
    assert!(
        redis_ping(&mut client).await.is_err(),
        "cut connection answered"
    );
    assert!(TcpStream::connect(proxy.addr()).await.is_err());

    // The shared Redis keeps serving everyone else.
    let direct = Service::Redis.socket_addr().await.expect("redis addr");
    let mut other = TcpStream::connect(direct).await.expect("direct connect");
    assert_eq!(redis_ping(&mut other).await.expect("ping"), b"+PONG\r\n");

    proxy.restore().await.expect("restore");
    let mut back = TcpStream::connect(proxy.addr()).await.expect("reconnect");
    assert_eq!(redis_ping(&mut back).await.expect("ping"), b"+PONG\r\n");
}

#[tokio::test]
#[ignore = "needs RabbitMQ at 127.0.0.1:5672 (LOTTERY_TEST_AMQP_URL)"]
async fn rabbitmq_handshake_through_the_proxy() {
    Service::RabbitMq.require().await;
    let proxy = TcpProxy::for_service(Service::RabbitMq)
        .await
        .expect("proxy for rabbitmq");
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    client
        .write_all(b"AMQP\x00\x00\x09\x01")
        .await
        .expect("protocol header");
    // The broker answers with a method frame (type 1) on channel 0:
    // Connection.Start.
    let mut header = [0u8; 3];
    tokio::time::timeout(WAIT, client.read_exact(&mut header))
        .await
        .expect("broker answers in time")
        .expect("read frame header");
    assert_eq!(header, [1, 0, 0]);

    proxy.cut().await;
    let mut rest = [0u8; 1024];
    let ended = loop {
        match tokio::time::timeout(WAIT, client.read(&mut rest)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => continue,
            Err(_) => break false,
        }
    };
    assert!(ended, "broker connection survived the cut");
}
