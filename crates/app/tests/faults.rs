//! Redis going away in the middle of a campaign (through a proxy, so the shared Redis other
//! tests use stays up).

mod common;

use std::time::{Duration, Instant};

use common::{Mode, award, command, running, world_full};
use lottery_activity::{ActivityRepository, Page};
use lottery_app::{AppError, DrawRequest};
use lottery_award::AwardKind;
use lottery_domain::UserId;
use lottery_strategy::DrawMode;
use lottery_testkit::{Service, TcpProxy};

fn req(user: &str, activity: lottery_domain::ActivityId) -> DrawRequest {
    DrawRequest {
        user: UserId::new(user).expect("user"),
        activity,
        idempotency_key: None,
        shipping: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB at 127.0.0.1:3306 and Redis at 127.0.0.1:6379"]
async fn redis_down_means_unavailable_and_nothing_written_then_recovers() {
    let redis = Service::Redis.require().await;
    let proxy = TcpProxy::for_service(Service::Redis).await.expect("proxy");
    let w = world_full(Mode::Cluster, proxy.proxied_url(&redis), |s| s).await;
    let d = running(
        &w.lottery,
        command(
            20,
            2,
            DrawMode::Single,
            vec![award(AwardKind::COUPON, "c", 20, "1")],
        ),
    )
    .await;
    for i in 0..5 {
        w.lottery
            .drawing()
            .draw(req(&format!("before-{i}"), d.activity_id))
            .await
            .expect("draw while up");
    }

    proxy.cut().await;
    let started = Instant::now();
    for i in 0..5 {
        let r = w
            .lottery
            .drawing()
            .draw(req(&format!("during-{i}"), d.activity_id))
            .await;
        assert!(
            matches!(r, Err(AppError::Unavailable(_))),
            "draw while Redis is down: {r:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "failing fast, took {:?}",
        started.elapsed()
    );
    for i in 0..5 {
        let user = UserId::new(format!("during-{i}")).expect("user");
        assert!(
            w.lottery
                .queries()
                .user_takes(&user, None, Page::new(0, 10))
                .await
                .expect("takes")
                .is_empty(),
            "nothing written"
        );
    }

    proxy.restore().await.expect("restore");
    // Give any background give-back a moment to run against the restored store.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for i in 0..15 {
        w.lottery
            .drawing()
            .draw(req(&format!("after-{i}"), d.activity_id))
            .await
            .expect("draw after recovery");
    }
    // 5 + 15 draws of 20 stock: all granted, none lost, none counted twice.
    assert_eq!(
        w.stock.stock_left(d.activity_id).await.expect("stock"),
        Some(0)
    );
    let snapshot = w
        .storage
        .config()
        .stock_counts(d.activity_id)
        .await
        .expect("db")
        .expect("activity");
    assert_eq!(snapshot.stock_left, 0);
    let r = w.lottery.drawing().draw(req("late", d.activity_id)).await;
    assert!(
        matches!(
            r,
            Err(AppError::Participation(
                lottery_activity::ParticipationError::SoldOut
            ))
        ),
        "{r:?}"
    );
}
