//! The single-server connection that every operation shares: a connection whose replies went
//! missing is never used again, so no later command is answered with another's reply.

use std::time::Duration;

use deadpool_redis::redis::cmd;
use lottery_activity::StockError;
use lottery_stock::{RedisConnection, RedisTarget};
use lottery_testkit::{Service, TcpProxy, unique_name};

#[tokio::test]
#[ignore = "needs Redis at 127.0.0.1:6379"]
async fn lost_replies_never_answer_a_later_command() {
    let direct = Service::Redis.require().await;
    let proxy = TcpProxy::for_service(Service::Redis).await.expect("proxy");
    let via = proxy.proxied_url(&direct).expect("proxied url");
    let redis = RedisConnection::connect(&RedisTarget::Server(via), 4, Duration::from_millis(300))
        .await
        .expect("connect");
    let prefix = unique_name("conn");
    let key = |k: &str| format!("{prefix}:{k}");
    for (k, v) in [("a", "1"), ("b", "2")] {
        redis
            .query::<()>(cmd("SET").arg(key(k)).arg(v).arg("EX").arg(60))
            .await
            .expect("set");
    }

    // The command reaches Redis, its reply does not.
    proxy.drop_replies();
    let lost = redis.query::<String>(cmd("GET").arg(key("a"))).await;
    assert!(
        matches!(lost, Err(StockError::Unavailable(_))),
        "a lost reply is a bounded failure: {lost:?}"
    );
    proxy.resume();

    for _ in 0..10 {
        let b: String = redis.query(cmd("GET").arg(key("b"))).await.expect("get b");
        assert_eq!(b, "2", "b's own reply");
        let a: String = redis.query(cmd("GET").arg(key("a"))).await.expect("get a");
        assert_eq!(a, "1", "a's own reply");
    }
}
