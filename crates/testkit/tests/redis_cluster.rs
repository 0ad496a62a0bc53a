//! The private Redis Cluster helper: it starts, tells who serves what, and fails over.

use lottery_testkit::PrivateRedisCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server and redis-cli (a private Redis Cluster)"]
async fn a_private_cluster_starts_and_fails_over() {
    let mut cluster = PrivateRedisCluster::start(3, 1)
        .await
        .expect("a private Redis Cluster (redis-server and redis-cli)");
    assert_eq!(cluster.seeds().len(), 6);
    let master = cluster.master_of("{a:1}:stock").await.expect("master");
    let replica = cluster.replica_of(master).await.expect("replica");
    assert_ne!(master, replica);
    cluster.failover(replica, None).await.expect("failover");
    assert_eq!(
        cluster.master_of("{a:1}:stock").await.expect("master"),
        replica,
        "the replica serves the slot now"
    );
    // The demoted master follows it; killed, the cluster stays whole.
    assert_eq!(cluster.replica_of(replica).await.expect("replica"), master);
    cluster.kill(master);
    cluster.wait_until_healthy().await.expect("healthy");
    let pong = cluster.command(replica, &["PING"]).await.expect("ping");
    assert_eq!(pong.trim(), "PONG");
}
