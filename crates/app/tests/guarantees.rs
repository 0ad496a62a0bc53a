//! The stock guarantees under the faults that break naive pipelines: stock keys lost from the
//! store mid-campaign, a commit whose acknowledgement is lost, a database that stalls past the
//! caller's deadline. Each ends with an audit straight from the databases and the store.

#[macro_use]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{
    DrawFault, FaultyDraws, Mode, Options, World, award, command, running, world_opts, world_with,
};
use lottery_activity::ParticipationError;
use lottery_app::{AppError, DrawOutcome, DrawRequest};
use lottery_award::AwardKind;
use lottery_domain::{ActivityId, AwardId, UserId};
use lottery_strategy::DrawMode;
use lottery_testkit::{PrivateRedis, Service, TcpProxy};

both_modes!(
    a_lost_commit_acknowledgement_keeps_the_win,
    drift_above_the_records_is_repaired,
);

fn keyed(user: &str, activity: ActivityId, key: &str) -> DrawRequest {
    DrawRequest {
        user: UserId::new(user).expect("user"),
        activity,
        idempotency_key: Some(key.to_owned()),
        shipping: None,
    }
}

/// What the shards hold for an activity: stored takes (tombstones excluded) and orders per
/// award.
async fn audit(w: &World, activity: ActivityId) -> (u64, HashMap<AwardId, u64>) {
    let per_table = w
        .storage
        .router()
        .fan_out(|route, pool| async move {
            let takes: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM {} WHERE activity_id = ? AND state <> 'void'",
                route.table("user_take")
            ))
            .bind(activity.get())
            .fetch_one(&pool)
            .await?;
            let orders: Vec<(i64, i64)> = sqlx::query_as(&format!(
                "SELECT award_id, COUNT(*) FROM {} WHERE activity_id = ? GROUP BY award_id",
                route.table("win_order")
            ))
            .bind(activity.get())
            .fetch_all(&pool)
            .await?;
            Ok::<_, sqlx::Error>((takes, orders))
        })
        .await
        .expect("audit query");
    let mut takes = 0;
    let mut orders = HashMap::new();
    for (_, (t, rows)) in per_table {
        takes += t as u64;
        for (award, n) in rows {
            *orders
                .entry(AwardId::new(award).expect("award id"))
                .or_default() += n as u64;
        }
    }
    (takes, orders)
}

/// Settles every pending claim now (no grace), as the reconciler job does after its grace.
async fn reconcile_all(w: &World, activity: ActivityId) {
    w.lottery
        .reconciler(Duration::ZERO)
        .reconcile(activity)
        .await
        .expect("reconcile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB at 127.0.0.1:3306 and redis-server"]
async fn stock_keys_flushed_mid_campaign_never_oversell() {
    Service::MariaDb.require().await;
    let redis = PrivateRedis::start(&[]).await.expect("private redis");
    let w = world_opts(
        Mode::Cluster,
        Options {
            redis_url: Some(redis.url()),
            ..Options::default()
        },
        |s| s,
    )
    .await;
    let d = running(
        &w.lottery,
        command(
            3_000,
            1,
            DrawMode::Single,
            vec![
                award(AwardKind::COUPON, "coupon", 300, "0.2"),
                award(AwardKind::REDEEM_CODE, "code", 100, "0.1"),
            ],
        ),
    )
    .await;
    let activity = d.activity_id;
    let started = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let sold_out = Arc::new(AtomicBool::new(false));
    let drawers: Vec<_> = (0..64)
        .map(|worker| {
            let lottery = w.lottery.clone();
            let (started, answered, sold_out) =
                (started.clone(), answered.clone(), sold_out.clone());
            tokio::spawn(async move {
                let mut errors = 0u32;
                while !sold_out.load(Ordering::Relaxed) && errors < 1_000 {
                    let n = started.fetch_add(1, Ordering::Relaxed);
                    let user = format!("u{worker}-{n}");
                    match lottery.drawing().draw(keyed(&user, activity, "k")).await {
                        Ok(_) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(AppError::Participation(ParticipationError::SoldOut)) => {
                            sold_out.store(true, Ordering::Relaxed);
                        }
                        // A reload in progress may turn a draw away; the drawer goes on.
                        Err(AppError::Unavailable(_) | AppError::OutcomeUnknown) => errors += 1,
                        Err(e) => panic!("unexpected draw error: {e}"),
                    }
                }
            })
        })
        .collect();
    // Lose every key twice while the drawers are busy.
    for at in [800, 1_800] {
        while answered.load(Ordering::Relaxed) < at && !sold_out.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let reply = redis.command(&["FLUSHALL"]).await.expect("flush");
        assert!(reply.contains("OK"), "{reply}");
    }
    for d in drawers {
        d.await.expect("drawer");
    }
    assert!(sold_out.load(Ordering::Relaxed), "the campaign sold out");
    reconcile_all(&w, activity).await;
    let (takes, orders) = audit(&w, activity).await;
    let (coupon, code) = (d.award_ids[0], d.award_ids[1]);
    eprintln!(
        "flushed twice: {takes} takes, {} coupons, {} codes",
        orders.get(&coupon).copied().unwrap_or(0),
        orders.get(&code).copied().unwrap_or(0)
    );
    assert!(takes <= 3_000, "{takes} takes of a stock of 3,000");
    assert!(
        orders.get(&coupon).copied().unwrap_or(0) <= 300,
        "{orders:?}"
    );
    assert!(orders.get(&code).copied().unwrap_or(0) <= 100, "{orders:?}");
    // Nothing leaked either: what the store has left plus what is stored is the stock.
    let left = w
        .stock
        .stock_left(activity)
        .await
        .expect("stock")
        .unwrap_or(0);
    assert_eq!(
        left + takes,
        3_000,
        "stock left {left} + stored takes {takes}"
    );
}

async fn a_lost_commit_acknowledgement_keeps_the_win(mode: Mode) {
    let w = world_with(mode, |mut s| {
        s.draws = FaultyDraws::wrap(s.draws.clone(), DrawFault::LoseAck, 1);
        s
    })
    .await;
    // One prize, drawn by everyone: a second win would be an oversell.
    let d = running(
        &w.lottery,
        command(
            10,
            1,
            DrawMode::Single,
            vec![award(AwardKind::PHYSICAL, "phone", 1, "1")],
        ),
    )
    .await;
    let first = w
        .lottery
        .drawing()
        .draw(keyed("first", d.activity_id, "once"))
        .await
        .expect("the stored win is the answer");
    assert_eq!(first.result, DrawOutcome::Win);
    assert_eq!(w.stock.stock_left(d.activity_id).await, Ok(Some(9)));
    assert_eq!(
        w.stock.awards_left(d.activity_id, &d.award_ids).await,
        Ok(vec![Some(0)]),
        "the prize stays taken"
    );
    let replay = w
        .lottery
        .drawing()
        .draw(keyed("first", d.activity_id, "once"))
        .await
        .expect("replay");
    assert!(replay.replayed);
    assert_eq!(replay.take_id, first.take_id);
    assert_eq!(replay.order_id, first.order_id);
    let second = w
        .lottery
        .drawing()
        .draw(keyed("second", d.activity_id, "once"))
        .await
        .expect("draw");
    assert_eq!(second.result, DrawOutcome::Lose, "the one phone is gone");
    let (takes, orders) = audit(&w, d.activity_id).await;
    assert_eq!(takes, 2);
    assert_eq!(orders.get(&d.award_ids[0]).copied(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB at 127.0.0.1:3306 and Redis at 127.0.0.1:6379"]
async fn draws_past_their_deadline_end_recorded_and_replay() {
    let proxy = TcpProxy::for_service(Service::MariaDb)
        .await
        .expect("proxy");
    let mut w = world_opts(
        Mode::Cluster,
        Options {
            shards_via: Some(&proxy),
            ..Options::default()
        },
        |s| s,
    )
    .await;
    w.lottery = w
        .lottery
        .clone()
        .with_draw_deadline(Duration::from_millis(800));
    let d = running(
        &w.lottery,
        command(
            100,
            1,
            DrawMode::Single,
            vec![award(AwardKind::COUPON, "coupon", 100, "0.5")],
        ),
    )
    .await;
    let activity = d.activity_id;
    // Loaded and warm before the stall.
    w.lottery
        .drawing()
        .draw(keyed("warm", activity, "warm"))
        .await
        .expect("warm-up draw");

    proxy.pause();
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let lottery = w.lottery.clone();
            tokio::spawn(async move {
                // The HTTP layer gives up on a request as this does.
                tokio::time::timeout(
                    Duration::from_secs(3),
                    lottery
                        .drawing()
                        .draw(keyed(&format!("stalled-{i}"), activity, "k")),
                )
                .await
            })
        })
        .collect();
    for c in calls {
        let answer = c.await.expect("task");
        assert!(
            matches!(answer, Ok(Err(AppError::OutcomeUnknown))),
            "a stalled draw is answered outcome_unknown in time: {answer:?}"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.resume();
    // The draws went on and ended; every replay returns what was stored.
    let mut replayed = 0;
    for i in 0..20 {
        let user = format!("stalled-{i}");
        let mut answer = w.lottery.drawing().draw(keyed(&user, activity, "k")).await;
        for _ in 0..100 {
            if !matches!(
                answer,
                Err(AppError::OutcomeUnknown | AppError::Unavailable(_))
            ) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            answer = w.lottery.drawing().draw(keyed(&user, activity, "k")).await;
        }
        let answer = answer.expect("replay after the stall");
        if answer.replayed {
            replayed += 1;
        }
        // The user's one take is the stored one: nothing more to draw.
        let again = w
            .lottery
            .drawing()
            .draw(keyed(&user, activity, "other"))
            .await;
        assert!(
            matches!(
                again,
                Err(AppError::Participation(
                    ParticipationError::QuotaExhausted { .. }
                ))
            ),
            "quota equals stored takes: {again:?}"
        );
    }
    assert_eq!(replayed, 20, "every stalled draw was recorded and replays");
    reconcile_all(&w, activity).await;
    let (takes, _) = audit(&w, activity).await;
    let left = w
        .stock
        .stock_left(activity)
        .await
        .expect("stock")
        .unwrap_or(0);
    assert_eq!(takes, 21);
    assert_eq!(
        left + takes,
        100,
        "stock left {left} + stored takes {takes}"
    );
}

async fn drift_above_the_records_is_repaired(mode: Mode) {
    let w = world_with(mode, |s| s).await;
    let d = running(
        &w.lottery,
        command(
            10,
            1,
            DrawMode::Single,
            vec![award(AwardKind::COUPON, "coupon", 10, "1")],
        ),
    )
    .await;
    let activity = d.activity_id;
    for i in 0..3 {
        w.lottery
            .drawing()
            .draw(keyed(&format!("u{i}"), activity, "k"))
            .await
            .expect("draw");
    }
    let sync = w.lottery.stock_sync();
    let clean = sync.sync(activity).await.expect("sync").expect("loaded");
    assert!(!clean.repaired);
    assert_eq!(clean.live.stock_left, 7);
    // The store comes back from an old snapshot: it has the whole stock again.
    let generation = w
        .stock
        .generation(activity)
        .await
        .expect("gen")
        .expect("loaded");
    w.stock
        .load_activity(&lottery_activity::StockSnapshot {
            activity_id: activity,
            generation: generation + 1,
            stock_left: 10,
            awards_left: vec![(d.award_ids[0], 10)],
            expires_at: chrono::Utc::now() + chrono::Duration::days(1),
            nobody_drew: false,
        })
        .await
        .expect("load");
    let repaired = sync.sync(activity).await.expect("sync").expect("loaded");
    assert!(repaired.repaired, "drift above the records is found");
    assert_eq!(repaired.live.stock_left, 7);
    assert_eq!(repaired.live.awards_left, vec![(d.award_ids[0], 7)]);
    assert!(
        !sync
            .sync(activity)
            .await
            .expect("sync")
            .expect("loaded")
            .repaired
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs MariaDB at 127.0.0.1:3306 and Redis at 127.0.0.1:6379"]
async fn sold_out_is_answered_without_the_database() {
    let proxy = TcpProxy::for_service(Service::MariaDb)
        .await
        .expect("proxy");
    let w = world_opts(
        Mode::Cluster,
        Options {
            shards_via: Some(&proxy),
            ..Options::default()
        },
        |s| s,
    )
    .await;
    let d = running(
        &w.lottery,
        command(
            2,
            1,
            DrawMode::Single,
            vec![award(AwardKind::COUPON, "coupon", 2, "1")],
        ),
    )
    .await;
    let activity = d.activity_id;
    for user in ["first", "second"] {
        let won = w
            .lottery
            .drawing()
            .draw(keyed(user, activity, "k"))
            .await
            .expect("draw");
        assert_eq!(won.result, DrawOutcome::Win);
    }

    // The shards stall: new users' keyed draws, spread past the sold-out memo, are still
    // answered at once, from the stock store.
    proxy.pause();
    for i in 0..12 {
        let answer = tokio::time::timeout(
            Duration::from_millis(1_500),
            w.lottery
                .drawing()
                .draw(keyed(&format!("late-{i}"), activity, "k")),
        )
        .await;
        assert!(
            matches!(
                answer,
                Ok(Err(AppError::Participation(ParticipationError::SoldOut)))
            ),
            "answered sold out without the database: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.resume();
    // A winner's replay still finds the win.
    let replay = w
        .lottery
        .drawing()
        .draw(keyed("first", activity, "k"))
        .await
        .expect("replay");
    assert_eq!(replay.result, DrawOutcome::Win);
    assert!(replay.replayed);
}
