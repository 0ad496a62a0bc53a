//! A win's transaction is all or nothing even when its connection dies at any byte.

mod common;

use common::{Backend, env, order, take, user};
use db_router::RouterConfig;
use lottery_activity::{OrderRepository, TakeOutcome, TakeRepository};
use lottery_storage::Storage;
use lottery_testkit::TcpProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs MariaDB at 127.0.0.1:3306 (LOTTERY_TEST_MYSQL_URL)"]
async fn a_connection_cut_mid_win_leaves_all_or_nothing() {
    let e = env(Backend::MariaDb, 1, 2).await;
    let shard = e.urls[1].clone();
    let (host, port) =
        lottery_testkit::url::host_port(&shard).expect("shard url has host and port");
    let target = tokio::net::lookup_host((host.as_str(), port))
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let proxy = TcpProxy::start(target).await.expect("proxy");
    let mut config = RouterConfig::new(
        e.urls[0].clone(),
        vec![proxy.proxied_url(&shard).expect("proxied url")],
        2,
    );
    // A cut connection must fail fast rather than wait out the default acquire timeout.
    config.acquire_timeout_ms = 700;
    config.max_connections = 1;
    let via_proxy = Storage::connect(&config)
        .await
        .expect("connect through the proxy");

    let (takes, orders, outbox) = (e.storage.takes(), e.storage.orders(), e.storage.outbox());
    let (mut committed, mut failed) = (0, 0);
    for i in 0..70i64 {
        let u = user(&format!("cut-{i}"));
        let TakeOutcome::Recorded(t) = takes
            .record_take(&take(i + 1, &u, 1), 1)
            .await
            .expect("take")
        else {
            panic!("quota")
        };
        let (o, m) = order(10_000 + i, &t);
        // Let a growing number of bytes through, then cut: over the loop the cut falls in
        // the handshake, before, between and after every statement of the transaction.
        proxy.cut_after((i * 23) as usize);
        let result = via_proxy.orders().record_win(&o, &m).await;
        proxy.restore().await.expect("restore");

        let take_open = takes
            .open_take(&u, t.activity_id)
            .await
            .expect("read")
            .is_some();
        let stored = orders.order(&u, o.order_id).await.expect("read");
        let pending = outbox
            .due(chrono::Utc::now() + chrono::Duration::days(3650), 10_000)
            .await
            .expect("scan");
        let in_outbox = pending.iter().any(|r| r.message.message_id == m.message_id);
        let all = !take_open && stored.is_some() && in_outbox;
        let nothing = take_open && stored.is_none() && !in_outbox;
        assert!(
            all || nothing,
            "cut after {} bytes left a partial win: take open {take_open}, order {}, outbox {in_outbox}",
            i * 23,
            stored.is_some()
        );
        match result {
            Ok(()) => {
                assert!(all, "a reported success must be stored");
                committed += 1;
            }
            Err(_) => failed += 1,
        }
    }
    eprintln!("{committed} committed, {failed} cut");
    assert!(
        committed > 0 && failed > 0,
        "the cut must land both before and after the commit ({committed} ok, {failed} cut)"
    );
}
