//! The draw pipeline under load and failure, in embedded mode (SQLite + in-memory stock) and
//! cluster mode (MariaDB + Redis).

#[macro_use]
mod common;

use std::collections::HashMap;

use common::{DrawFault, FaultyDraws, Mode, award, command, running, world, world_with};
use lottery_activity::{ActivityRepository, OrderFilter, Page, ParticipationError};
use lottery_app::{AppError, DrawOutcome, DrawRequest, DrawResult, Lottery};
use lottery_award::{AddressField, AwardKind, GrantState, ShippingAddress};
use lottery_domain::{ActivityId, UserId};
use lottery_strategy::DrawMode;

both_modes!(
    seed_scenario_2000_users_100_stock,
    one_user_200_concurrent_draws_limit_3,
    a_failed_write_gives_the_stock_back,
    idempotency_key_replays_the_first_result,
    out_of_stock_award_falls_back,
    participation_rules_give_distinct_errors,
    shipped_prizes_wait_for_an_address_given_once,
);

fn req(user: &str, activity: ActivityId) -> DrawRequest {
    DrawRequest {
        user: UserId::new(user).expect("user"),
        activity,
        idempotency_key: None,
        shipping: None,
    }
}

async fn draw_all(
    lottery: &Lottery,
    requests: Vec<DrawRequest>,
) -> Vec<Result<DrawResult, AppError>> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|r| {
            let lottery = lottery.clone();
            tokio::spawn(async move { lottery.drawing().draw(r).await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("draw task"));
    }
    out
}

async fn seed_scenario_2000_users_100_stock(mode: Mode) {
    let w = world(mode).await;
    let cmd = command(
        100,
        1,
        DrawMode::Single,
        vec![
            award(AwardKind::PHYSICAL, "phone", 2, "0.05"),
            award(AwardKind::COUPON, "coupon", 30, "0.4"),
            award(AwardKind::DESCRIPTION, "thanks", 1_000, "0.3"),
        ],
    );
    let d = running(&w.lottery, cmd).await;
    let results = draw_all(
        &w.lottery,
        (0..2_000)
            .map(|i| req(&format!("seed-{i}"), d.activity_id))
            .collect(),
    )
    .await;

    let mut ok = 0;
    let mut sold_out = 0;
    let mut wins: HashMap<_, u64> = HashMap::new();
    for r in &results {
        match r {
            Ok(res) => {
                ok += 1;
                if res.result == DrawOutcome::Win {
                    *wins
                        .entry(res.award.as_ref().expect("award").id)
                        .or_default() += 1;
                }
            }
            Err(AppError::Participation(ParticipationError::SoldOut)) => sold_out += 1,
            Err(e) => panic!("unexpected draw error: {e}"),
        }
    }
    assert_eq!((ok, sold_out), (100, 1_900));
    let counts: HashMap<_, u64> = d.award_ids.iter().copied().zip([2u64, 30, 1_000]).collect();
    for (award, n) in &wins {
        assert!(
            n <= &counts[award],
            "award {award} won {n} times, only {} exist",
            counts[award]
        );
    }

    // The stock store and the database agree.
    let live = w
        .stock
        .stock_left(d.activity_id)
        .await
        .expect("stock")
        .expect("loaded");
    assert_eq!(live, 0);
    let left = w
        .stock
        .awards_left(d.activity_id, &d.award_ids)
        .await
        .expect("awards");
    for (i, a) in d.award_ids.iter().enumerate() {
        assert_eq!(
            left[i],
            Some(counts[a] - wins.get(a).copied().unwrap_or(0)),
            "award {a}"
        );
    }
    let synced = w
        .lottery
        .stock_sync()
        .sync(d.activity_id)
        .await
        .expect("sync");
    assert!(synced.is_some());
    let db = w
        .storage
        .config()
        .stock_counts(d.activity_id)
        .await
        .expect("snapshot")
        .expect("activity");
    assert_eq!(db.stock_left, 0);
    for (a, n) in &db.awards_left {
        assert_eq!(
            *n,
            counts[a] - wins.get(a).copied().unwrap_or(0),
            "database award {a}"
        );
    }
    // Phones won without an address wait for it: no message delivers them yet.
    let phone = d.award_ids[0];
    let delivered: u64 = wins
        .iter()
        .filter(|(a, _)| **a != phone)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        w.storage
            .outbox()
            .count(lottery_storage::OutboxState::Pending)
            .await
            .expect("count"),
        delivered,
        "one outbox message per win, none for a phone awaiting its address"
    );
    for res in results
        .iter()
        .flatten()
        .filter(|r| r.result == DrawOutcome::Win)
    {
        let expected = if res.award.as_ref().map(|a| a.id) == Some(phone) {
            GrantState::AwaitingAddress
        } else {
            GrantState::Init
        };
        assert_eq!(res.grant_state, Some(expected), "{res:?}");
    }
}

async fn one_user_200_concurrent_draws_limit_3(mode: Mode) {
    let w = world(mode).await;
    let d = running(
        &w.lottery,
        command(
            1_000,
            3,
            DrawMode::Single,
            vec![award(AwardKind::COUPON, "c", 500, "0.5")],
        ),
    )
    .await;
    let results = draw_all(
        &w.lottery,
        (0..200).map(|_| req("greedy", d.activity_id)).collect(),
    )
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let quota = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(AppError::Participation(
                    ParticipationError::QuotaExhausted { limit: 3 }
                ))
            )
        })
        .count();
    assert_eq!(
        (ok, quota),
        (3, 197),
        "{:?}",
        results
            .iter()
            .filter(|r| r.is_err())
            .take(3)
            .collect::<Vec<_>>()
    );
    let user = UserId::new("greedy").expect("user");
    assert_eq!(
        w.lottery
            .queries()
            .user_takes(&user, Some(d.activity_id), Page::new(0, 50))
            .await
            .expect("takes")
            .len(),
        3
    );
    assert_eq!(
        w.stock.stock_left(d.activity_id).await.expect("stock"),
        Some(997)
    );
}

async fn a_failed_write_gives_the_stock_back(mode: Mode) {
    let w = world_with(mode, |mut s| {
        s.draws = FaultyDraws::wrap(s.draws.clone(), DrawFault::Refuse, 5);
        s
    })
    .await;
    // Every draw wins the only award, so both the activity and award stock are claimed.
    let d = running(
        &w.lottery,
        command(
            10,
            5,
            DrawMode::Single,
            vec![award(AwardKind::COUPON, "c", 10, "1")],
        ),
    )
    .await;
    for _ in 0..5 {
        let r = w.lottery.drawing().draw(req("victim", d.activity_id)).await;
        assert!(matches!(r, Err(AppError::Unavailable(_))), "{r:?}");
    }
    assert_eq!(
        w.stock.stock_left(d.activity_id).await.expect("stock"),
        Some(10),
        "activity stock given back"
    );
    assert_eq!(
        w.stock
            .awards_left(d.activity_id, &d.award_ids)
            .await
            .expect("awards"),
        vec![Some(10)]
    );
    // The user's quota was given back too: all five takes are still available.
    for _ in 0..5 {
        let r = w
            .lottery
            .drawing()
            .draw(req("victim", d.activity_id))
            .await
            .expect("draw");
        assert_eq!(r.result, DrawOutcome::Win);
    }
    assert_eq!(
        w.stock.stock_left(d.activity_id).await.expect("stock"),
        Some(5)
    );
}

async fn idempotency_key_replays_the_first_result(mode: Mode) {
    let w = world(mode).await;
    let d = running(
        &w.lottery,
        command(
            50,
            5,
            DrawMode::Single,
            vec![award(AwardKind::COUPON, "c", 50, "0.5")],
        ),
    )
    .await;
    let mut first_req = req("replayer", d.activity_id);
    first_req.idempotency_key = Some("order-123".into());
    let first = w
        .lottery
        .drawing()
        .draw(first_req.clone())
        .await
        .expect("draw");
    assert!(!first.replayed);
    // Sequential and concurrent replays all answer the first result and take nothing more.
    let replays = draw_all(&w.lottery, (0..20).map(|_| first_req.clone()).collect()).await;
    for r in replays {
        let r = r.expect("replay");
        assert!(r.replayed);
        assert_eq!(
            (r.take_id, r.order_id, r.result),
            (first.take_id, first.order_id, first.result)
        );
    }
    assert_eq!(
        w.stock.stock_left(d.activity_id).await.expect("stock"),
        Some(49)
    );
    let view = w
        .lottery
        .queries()
        .user_activity(&first_req.user, d.activity_id)
        .await
        .expect("view");
    assert_eq!((view.takes_used, view.takes_left), (1, 4));
    // The same key for another activity is a conflict, not a silent replay.
    let other = running(
        &w.lottery,
        command(
            5,
            1,
            DrawMode::Single,
            vec![award(AwardKind::COUPON, "c", 5, "0.5")],
        ),
    )
    .await;
    let mut wrong = first_req.clone();
    wrong.activity = other.activity_id;
    assert!(matches!(
        w.lottery.drawing().draw(wrong).await,
        Err(AppError::Conflict(_))
    ));
}

async fn out_of_stock_award_falls_back(mode: Mode) {
    let w = world(mode).await;
    let mut cmd = command(
        100,
        1,
        DrawMode::Single,
        vec![
            award(AwardKind::PHYSICAL, "phone", 3, "1"),
            award(AwardKind::DESCRIPTION, "thanks", 1_000, "0"),
        ],
    );
    let fallback_id = lottery_domain::AwardId::new(990_001).expect("id");
    cmd.strategy.awards[1].award_id = Some(fallback_id);
    cmd.strategy.fallback_award_id = Some(fallback_id);
    let d = running(&w.lottery, cmd).await;
    let results = draw_all(
        &w.lottery,
        (0..40)
            .map(|i| req(&format!("fb-{i}"), d.activity_id))
            .collect(),
    )
    .await;
    let mut phones = 0;
    let mut fallbacks = 0;
    for r in results {
        let r = r.expect("draw");
        assert_eq!(r.result, DrawOutcome::Win, "every draw wins something");
        if r.fallback {
            assert_eq!(r.award.expect("award").id, fallback_id);
            fallbacks += 1;
        } else {
            phones += 1;
        }
    }
    assert_eq!((phones, fallbacks), (3, 37));
}

async fn participation_rules_give_distinct_errors(mode: Mode) {
    let w = world(mode).await;
    let d = w
        .lottery
        .administration()
        .deploy(
            command(
                2,
                1,
                DrawMode::Single,
                vec![award(AwardKind::COUPON, "c", 1, "0.5")],
            ),
            "admin",
        )
        .await
        .expect("deploy");
    let not_open = w.lottery.drawing().draw(req("u1", d.activity_id)).await;
    assert!(
        matches!(
            not_open,
            Err(AppError::Participation(ParticipationError::NotOpen { .. }))
        ),
        "{not_open:?}"
    );
    for action in [
        lottery_activity::Action::Submit,
        lottery_activity::Action::Approve,
        lottery_activity::Action::Start,
    ] {
        w.lottery
            .administration()
            .act(d.activity_id, action)
            .await
            .expect("review");
    }
    w.lottery
        .drawing()
        .draw(req("u1", d.activity_id))
        .await
        .expect("first draw");
    let quota = w.lottery.drawing().draw(req("u1", d.activity_id)).await;
    assert!(
        matches!(
            quota,
            Err(AppError::Participation(
                ParticipationError::QuotaExhausted { .. }
            ))
        ),
        "{quota:?}"
    );
    w.lottery
        .drawing()
        .draw(req("u2", d.activity_id))
        .await
        .expect("second user");
    let sold = w.lottery.drawing().draw(req("u3", d.activity_id)).await;
    assert!(
        matches!(
            sold,
            Err(AppError::Participation(ParticipationError::SoldOut))
        ),
        "{sold:?}"
    );
    let missing = w
        .lottery
        .drawing()
        .draw(req("u2", ActivityId::new(42).expect("id")))
        .await;
    assert!(matches!(missing, Err(AppError::NotFound(_))), "{missing:?}");
}

fn address() -> ShippingAddress {
    ShippingAddress {
        recipient: "Ada".into(),
        phone: "123".into(),
        line1: "1 Main St".into(),
        line2: None,
        city: "Springfield".into(),
        region: None,
        postal_code: None,
        country: "US".into(),
    }
}

async fn shipped_prizes_wait_for_an_address_given_once(mode: Mode) {
    let w = world(mode).await;
    let d = running(
        &w.lottery,
        command(
            10,
            3,
            DrawMode::Single,
            vec![award(AwardKind::PHYSICAL, "phone", 10, "1")],
        ),
    )
    .await;
    let pending = || async {
        w.storage
            .outbox()
            .count(lottery_storage::OutboxState::Pending)
            .await
            .expect("count")
    };

    // A bad address is refused before anything is taken.
    let mut bad = req("ada", d.activity_id);
    bad.shipping = Some(ShippingAddress {
        city: " ".into(),
        ..address()
    });
    match w.lottery.drawing().draw(bad).await {
        Err(AppError::BadAddress(e)) => assert_eq!(e.field, AddressField::City),
        other => panic!("a blank city must be refused, got {other:?}"),
    }
    let ada = UserId::new("ada").expect("user");
    let standing = w
        .lottery
        .queries()
        .user_activity(&ada, d.activity_id)
        .await
        .expect("standing");
    assert_eq!(standing.takes_used, 0);

    // Without an address: won, waiting, nothing to deliver.
    let won = w
        .lottery
        .drawing()
        .draw(req("ada", d.activity_id))
        .await
        .expect("draw");
    assert_eq!(won.grant_state, Some(GrantState::AwaitingAddress));
    let order = won.order_id.expect("order");
    assert_eq!(pending().await, 0);
    let filter = OrderFilter {
        state: GrantState::AwaitingAddress,
        activity: Some(d.activity_id),
    };
    let listed = w
        .lottery
        .administration()
        .orders_in_state(filter, None, 50)
        .await
        .expect("list");
    assert_eq!(
        (
            listed.items.iter().map(|o| o.order_id).collect::<Vec<_>>(),
            listed.next_after
        ),
        (vec![order], None)
    );
    assert!(matches!(
        w.lottery
            .administration()
            .orders_in_state(filter, None, 0)
            .await,
        Err(AppError::Invalid(_))
    ));

    // Given once: the rest of the racers are told it is not awaiting any more.
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let (lottery, ada) = (w.lottery.clone(), ada.clone());
            tokio::spawn(async move {
                lottery
                    .fulfilment()
                    .give_address(&ada, order, address())
                    .await
            })
        })
        .collect();
    let mut given = 0;
    for r in racers {
        match r.await.expect("task") {
            Ok(o) => {
                given += 1;
                assert_eq!(o.grant_state, GrantState::Init);
            }
            Err(AppError::Conflict(m)) => assert!(m.contains("not awaiting an address"), "{m}"),
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(given, 1);
    assert_eq!(pending().await, 1, "one delivery message");
    assert!(
        w.lottery
            .administration()
            .orders_in_state(filter, None, 50)
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert!(matches!(
        w.lottery
            .fulfilment()
            .give_address(&UserId::new("eve").expect("user"), order, address())
            .await,
        Err(AppError::NotFound(_))
    ));

    // With an address: delivered at once.
    let mut with = req("bea", d.activity_id);
    with.shipping = Some(address());
    let direct = w.lottery.drawing().draw(with).await.expect("draw");
    assert_eq!(direct.grant_state, Some(GrantState::Init));
    assert_eq!(pending().await, 2);
}
