//! The repository contract, run unchanged against SQLite and MariaDB.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{Backend, deployment, env, order, t0, take, user};
use lottery_activity::{
    ActivityFilter, ActivityRepository, ActivityState, ClaimFate, ClaimRef, Deploy, Deployment,
    DrawRecord, DrawRepository, GiveAddress, OrderFilter, OrderRepository, OutboxMessage, Page,
    RecordOutcome, Revise, StockCounts, TakeOutcome, TakeRepository, TakeState, TakenId, WinOrder,
};
use lottery_activity::{GrantRepository, JobLeases, OutboxRepository};
use lottery_award::{AwardRepository, GrantState};
use lottery_domain::{ActivityId, AwardId, RepoError, StrategyId, TakeId, TreeId, UserId};
use lottery_rule::{Facts, Line, LineOp, Node, RuleTree, RuleTreeRepository};
use lottery_storage::{BatchOptions, DrawStore, OutboxState, WriteStats};
use lottery_strategy::StrategyRepository;

contract_tests!(
    migrations_are_idempotent,
    deploy_reads_back_whole,
    a_failed_deploy_leaves_nothing,
    deployments_never_take_over_stored_ids,
    worker_leases_are_unique_expire_and_keep_their_high_water,
    listing_filters_and_pages,
    state_changes_are_compare_and_set,
    running_and_due_activities_page_by_id,
    revisions_only_while_editing,
    takes_respect_the_limit,
    concurrent_takes_by_one_user_stop_at_the_limit,
    wins_consume_the_take_once,
    a_failed_win_leaves_the_take_open,
    outbox_scan_sees_every_shard_once,
    rows_land_where_the_router_says,
    rule_trees_round_trip,
    stock_sync_only_lowers,
    draws_record_takes_orders_and_keys,
    batched_draws_commit_each_draw_once,
    multi_row_batches_answer_like_single_draws,
    multi_row_batches_fall_back_on_a_reused_key,
    multi_row_batches_fall_back_on_a_voided_take,
    multi_row_batches_split_past_the_bind_limit,
    stock_counts_come_from_records_and_fences_refuse_older_claims,
    the_tally_counts_what_was_stored_before_it,
    settling_a_claim_voids_an_unrecorded_take_for_good,
    relays_claim_disjoint_rows_and_park_failures,
    grants_apply_once_per_message,
    job_leases_have_one_holder,
    addresses_are_given_once,
    orders_page_by_state_across_shards,
);

async fn migrations_are_idempotent(b: Backend) {
    let e = env(b, 2, 4).await;
    e.storage.migrate().await.expect("second run is a no-op");
    for route in e.storage.router().routes() {
        let pool = e.storage.router().pool(&route).expect("pool");
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {}",
            route.table("user_take")
        ))
        .fetch_one(pool)
        .await
        .expect("sharded table exists");
        assert_eq!(n, 0);
    }
}

async fn deploy_reads_back_whole(b: Backend) {
    let e = env(b, 1, 2).await;
    let store = e.storage.config();
    let d = deployment(100_001, 7, "Black Friday");
    store.deploy(&d).await.expect("deploy");
    assert_eq!(
        store.activity(d.activity.id()).await.expect("read"),
        Some(d.activity.clone())
    );
    assert_eq!(
        store.strategy(d.strategy.id()).await.expect("read"),
        Some(d.strategy.clone())
    );
    let ids: Vec<_> = d.awards.iter().map(|a| a.id).collect();
    assert_eq!(store.awards(&ids).await.expect("read"), d.awards);
    assert_eq!(
        store
            .activity(ActivityId::new(9).expect("id"))
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        store
            .strategy(StrategyId::new(9).expect("id"))
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        store.stock_left(d.activity.id()).await.expect("read"),
        Some(100)
    );
}

async fn a_failed_deploy_leaves_nothing(b: Backend) {
    let e = env(b, 1, 2).await;
    let store = e.storage.config();
    store
        .deploy(&deployment(1, 7, "first"))
        .await
        .expect("deploy");
    // Same strategy id again: refused after the awards were written, and all rolled back.
    let clash = deployment(2, 7, "second");
    assert_eq!(
        store.deploy(&clash).await,
        Ok(Deploy::Taken(TakenId::Strategy(
            StrategyId::new(7).expect("id")
        )))
    );
    assert_eq!(
        store
            .activity(ActivityId::new(2).expect("id"))
            .await
            .expect("read"),
        None
    );
    let first = store
        .activity(ActivityId::new(1).expect("id"))
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(first.name(), "first");
}

/// A deployment reusing ids of a stored one is refused whole and changes nothing: neither
/// the other activity nor its strategy nor its prizes.
async fn deployments_never_take_over_stored_ids(b: Backend) {
    let e = env(b, 1, 2).await;
    let store = e.storage.config();
    let original = deployment(1, 7, "running");
    store.deploy(&original).await.expect("deploy");
    let phone = original.awards[0].id;

    // Another activity and strategy, but the running one's phone, renamed.
    let mut thief = deployment(2, 8, "thief");
    thief.awards[0] = lottery_award::Award::new(
        phone,
        lottery_award::AwardKind::DESCRIPTION,
        "WORTHLESS",
        "nothing",
    )
    .expect("award");
    assert_eq!(
        store.deploy(&thief).await,
        Ok(Deploy::Taken(TakenId::Award(phone)))
    );
    // Its activity id, with everything else new.
    assert!(matches!(
        store.deploy(&deployment(1, 9, "same id")).await,
        Ok(Deploy::Taken(TakenId::Activity(_)))
    ));
    for id in [2, 9] {
        assert_eq!(
            store
                .activity(ActivityId::new(id).expect("id"))
                .await
                .expect("read"),
            None
        );
    }
    assert_eq!(
        store.award(phone).await.expect("read"),
        Some(original.awards[0].clone()),
        "the running activity's prize is unchanged"
    );

    // A revision of an editing activity cannot take another activity's prize either.
    let mut other = deployment(3, 10, "other");
    store.deploy(&other).await.expect("deploy");
    other.awards[0] = thief.awards[0].clone();
    let strategy_awards: Vec<_> = other
        .strategy
        .awards()
        .iter()
        .enumerate()
        .map(|(i, a)| lottery_strategy::StrategyAward {
            award_id: if i == 0 { phone } else { a.award_id },
            rate: a.rate,
            count: a.count,
        })
        .collect();
    let revised = Deployment::new(
        other.activity.clone(),
        lottery_strategy::Strategy::new(
            other.strategy.id(),
            other.strategy.mode(),
            strategy_awards,
            None,
        )
        .expect("strategy"),
        other.awards.clone(),
        &lottery_award::AwardRegistry::with_builtins(),
    )
    .expect("deployment");
    assert_eq!(
        store.revise(&revised).await,
        Ok(Revise::Taken(TakenId::Award(phone)))
    );
    assert_eq!(
        store.award(phone).await.expect("read"),
        Some(original.awards[0].clone())
    );
}

async fn listing_filters_and_pages(b: Backend) {
    let e = env(b, 1, 1).await;
    let store = e.storage.config();
    for i in 1..=5 {
        store
            .deploy(&deployment(i, 100 + i, &format!("Spring 100% #{i}")))
            .await
            .expect("deploy");
    }
    store
        .deploy(&deployment(6, 106, "Summer_sale"))
        .await
        .expect("deploy");
    store
        .change_state(
            ActivityId::new(2).expect("id"),
            ActivityState::Editing,
            ActivityState::PendingReview,
        )
        .await
        .expect("cas");

    let all = store
        .list(&ActivityFilter::default(), Page::new(0, 50))
        .await
        .expect("list");
    assert_eq!(
        all.iter().map(|a| a.id().get()).collect::<Vec<_>>(),
        [6, 5, 4, 3, 2, 1]
    );
    let by_name = ActivityFilter {
        name: Some("100%".into()),
        state: None,
    };
    assert_eq!(
        store
            .list(&by_name, Page::new(0, 50))
            .await
            .expect("list")
            .len(),
        5
    );
    // `_` and `%` are matched literally, not as wildcards.
    let literal = ActivityFilter {
        name: Some("r_s".into()),
        state: None,
    };
    assert_eq!(
        store
            .list(&literal, Page::new(0, 50))
            .await
            .expect("list")
            .len(),
        1
    );
    let pending = ActivityFilter {
        name: None,
        state: Some(ActivityState::PendingReview),
    };
    let got = store.list(&pending, Page::new(0, 50)).await.expect("list");
    assert_eq!(got.iter().map(|a| a.id().get()).collect::<Vec<_>>(), [2]);
    let page = store
        .list(&ActivityFilter::default(), Page::new(2, 2))
        .await
        .expect("list");
    assert_eq!(
        page.iter().map(|a| a.id().get()).collect::<Vec<_>>(),
        [4, 3]
    );
}

async fn state_changes_are_compare_and_set(b: Backend) {
    let e = env(b, 1, 1).await;
    let store = e.storage.config();
    let id = ActivityId::new(1).expect("id");
    store.deploy(&deployment(1, 7, "x")).await.expect("deploy");
    assert!(
        store
            .change_state(id, ActivityState::Editing, ActivityState::PendingReview)
            .await
            .expect("cas")
    );
    // The loser of a race sees a conflict (false), not a silent overwrite.
    assert!(
        !store
            .change_state(id, ActivityState::Editing, ActivityState::Closed)
            .await
            .expect("cas")
    );
    let a = store.activity(id).await.expect("read").expect("exists");
    assert_eq!(a.state(), ActivityState::PendingReview);
    store
        .change_state(id, ActivityState::PendingReview, ActivityState::Approved)
        .await
        .expect("cas");
    let running = store.running(None, 10).await.expect("scan");
    assert_eq!(running.iter().map(|a| a.id()).collect::<Vec<_>>(), [id]);
}

async fn running_and_due_activities_page_by_id(b: Backend) {
    let e = env(b, 1, 1).await;
    let store = e.storage.config();
    // Ids 1..=7: 1 editing, 2..=4 approved, 5..=6 doing, 7 closed.
    for n in 1..=7i64 {
        store
            .deploy(&deployment(n, 100 + n, &format!("a{n}")))
            .await
            .expect("deploy");
        let id = ActivityId::new(n).expect("id");
        let path: &[ActivityState] = match n {
            1 => &[],
            2..=4 => &[ActivityState::PendingReview, ActivityState::Approved],
            5 | 6 => &[
                ActivityState::PendingReview,
                ActivityState::Approved,
                ActivityState::Doing,
            ],
            _ => &[
                ActivityState::PendingReview,
                ActivityState::Approved,
                ActivityState::Closed,
            ],
        };
        let mut from = ActivityState::Editing;
        for to in path {
            assert!(store.change_state(id, from, *to).await.expect("cas"));
            from = *to;
        }
    }
    let ids =
        |v: Vec<lottery_activity::Activity>| v.iter().map(|a| a.id().get()).collect::<Vec<_>>();
    assert_eq!(ids(store.running(None, 3).await.expect("page")), [2, 3, 4]);
    let after = Some(ActivityId::new(4).expect("id"));
    assert_eq!(ids(store.running(after, 3).await.expect("page")), [5, 6]);
    // Before the window nothing is due; inside it the approved ones start; after it every
    // running one closes.
    let before = t0() - chrono::Duration::hours(1);
    assert!(store.due(before, None, 10).await.expect("due").is_empty());
    assert_eq!(
        ids(store.due(t0(), None, 10).await.expect("due")),
        [2, 3, 4]
    );
    let ended = t0() + chrono::Duration::days(8);
    assert_eq!(
        ids(store.due(ended, None, 10).await.expect("due")),
        [2, 3, 4, 5, 6]
    );
    assert_eq!(ids(store.due(ended, after, 1).await.expect("due")), [5]);
}

async fn revisions_only_while_editing(b: Backend) {
    let e = env(b, 1, 1).await;
    let store = e.storage.config();
    store
        .deploy(&deployment(1, 7, "before"))
        .await
        .expect("deploy");
    let revised = deployment(1, 7, "after");
    assert_eq!(store.revise(&revised).await, Ok(Revise::Revised));
    let a = store
        .activity(ActivityId::new(1).expect("id"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(a.name(), "after");
    assert_eq!(
        store
            .strategy(StrategyId::new(7).expect("id"))
            .await
            .expect("read"),
        Some(revised.strategy.clone())
    );
    store
        .change_state(
            ActivityId::new(1).expect("id"),
            ActivityState::Editing,
            ActivityState::PendingReview,
        )
        .await
        .expect("cas");
    assert_eq!(
        store.revise(&deployment(1, 7, "too late")).await,
        Ok(Revise::NotEditing)
    );
    let a = store
        .activity(ActivityId::new(1).expect("id"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(a.name(), "after");
}

async fn takes_respect_the_limit(b: Backend) {
    let e = env(b, 2, 2).await;
    let takes = e.storage.takes();
    let u = user("alice");
    let activity = ActivityId::new(1).expect("id");
    assert_eq!(takes.takes_used(&u, activity).await.expect("read"), 0);
    assert_eq!(takes.open_take(&u, activity).await.expect("read"), None);
    for n in 1..=3 {
        match takes.record_take(&take(n, &u, 1), 3).await.expect("take") {
            TakeOutcome::Recorded(t) => assert_eq!(t.take_number, n as u32),
            other => panic!("take {n}: {other:?}"),
        }
    }
    assert_eq!(
        takes.record_take(&take(4, &u, 1), 3).await.expect("take"),
        TakeOutcome::QuotaExhausted
    );
    assert_eq!(takes.takes_used(&u, activity).await.expect("read"), 3);
    // A retried take id is a conflict, not a fourth take; in the same words on every
    // backend, with no driver text.
    assert_eq!(
        takes.record_take(&take(1, &u, 1), 5).await,
        Err(RepoError::Conflict(
            "a record with the same key is already stored".into()
        ))
    );

    let open = takes
        .open_take(&u, activity)
        .await
        .expect("read")
        .expect("open take");
    assert_eq!(open.take_number, 1);
    assert!(takes.consume_take(&u, open.take_id).await.expect("consume"));
    assert!(
        !takes
            .consume_take(&u, open.take_id)
            .await
            .expect("consume twice")
    );
    assert_eq!(
        takes
            .open_take(&u, activity)
            .await
            .expect("read")
            .map(|t| t.take_number),
        Some(2)
    );
    let listed = takes
        .takes(&u, Some(activity), Page::new(0, 10))
        .await
        .expect("list");
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed.iter().filter(|t| t.state == TakeState::Used).count(),
        1
    );
    // Other users and activities are untouched.
    assert_eq!(
        takes
            .takes_used(&user("bob"), activity)
            .await
            .expect("read"),
        0
    );
    assert_eq!(
        takes
            .takes_used(&u, ActivityId::new(2).expect("id"))
            .await
            .expect("read"),
        0
    );
}

async fn concurrent_takes_by_one_user_stop_at_the_limit(b: Backend) {
    let e = env(b, 2, 2).await;
    let takes = Arc::new(e.storage.takes());
    let u = user("greedy");
    let tasks: Vec<_> = (1..=500)
        .map(|i| {
            let takes = takes.clone();
            let u = u.clone();
            tokio::spawn(async move { takes.record_take(&take(i, &u, 1), 3).await })
        })
        .collect();
    let mut recorded = Vec::new();
    let mut exhausted = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(TakeOutcome::Recorded(t)) => recorded.push(t.take_number),
            Ok(TakeOutcome::QuotaExhausted) => exhausted += 1,
            Err(e) => panic!("take failed: {e}"),
        }
    }
    recorded.sort_unstable();
    assert_eq!(recorded, [1, 2, 3]);
    assert_eq!(exhausted, 497);
    let stored = takes
        .takes(&u, None, Page::new(0, 100))
        .await
        .expect("list");
    assert_eq!(stored.len(), 3);
    tally_agrees_with_a_scan(&e).await;
}

async fn wins_consume_the_take_once(b: Backend) {
    let e = env(b, 2, 2).await;
    let (takes, orders) = (e.storage.takes(), e.storage.orders());
    let u = user("winner");
    let TakeOutcome::Recorded(t) = takes.record_take(&take(1, &u, 1), 3).await.expect("take")
    else {
        panic!("quota")
    };
    let (o, m) = order(500, &t);
    orders.record_win(&o, &m).await.expect("win");
    assert_eq!(
        takes.open_take(&u, t.activity_id).await.expect("read"),
        None
    );
    assert_eq!(
        orders.order(&u, o.order_id).await.expect("read"),
        Some(o.clone())
    );
    assert_eq!(
        orders.orders(&u, Page::new(0, 10)).await.expect("list"),
        vec![o.clone()]
    );
    assert_eq!(
        e.storage
            .outbox()
            .count(OutboxState::Pending)
            .await
            .expect("count"),
        1
    );

    // The same take cannot win twice, even with a new order id.
    let (again, m2) = order(501, &t);
    assert!(matches!(
        orders.record_win(&again, &m2).await,
        Err(RepoError::Conflict(_))
    ));
    assert_eq!(
        orders
            .orders(&u, Page::new(0, 10))
            .await
            .expect("list")
            .len(),
        1
    );

    // Grant state moves once.
    assert!(
        orders
            .finish_grant(&u, o.order_id, GrantState::Complete, Some("TEN-OFF"), t0())
            .await
            .expect("grant")
    );
    assert!(
        !orders
            .finish_grant(&u, o.order_id, GrantState::Failed, None, t0())
            .await
            .expect("grant")
    );
    let done = orders
        .order(&u, o.order_id)
        .await
        .expect("read")
        .expect("order");
    assert_eq!(
        (done.grant_state, done.delivery.as_deref()),
        (GrantState::Complete, Some("TEN-OFF"))
    );
    // Another user cannot read it.
    assert_eq!(
        orders
            .order(&user("thief"), o.order_id)
            .await
            .expect("read"),
        None
    );
    tally_agrees_with_a_scan(&e).await;
}

async fn a_failed_win_leaves_the_take_open(b: Backend) {
    let e = env(b, 1, 2).await;
    let (takes, orders) = (e.storage.takes(), e.storage.orders());
    let u = user("unlucky");
    let TakeOutcome::Recorded(first) = takes.record_take(&take(1, &u, 1), 3).await.expect("take")
    else {
        panic!()
    };
    let TakeOutcome::Recorded(second) = takes.record_take(&take(2, &u, 1), 3).await.expect("take")
    else {
        panic!()
    };
    let (o1, m1) = order(700, &first);
    orders.record_win(&o1, &m1).await.expect("win");
    // The second win reuses the first order's message id: its last statement fails, so the
    // whole transaction must roll back.
    let (o2, mut m2) = order(701, &second);
    m2.message_id = m1.message_id.clone();
    assert!(orders.record_win(&o2, &m2).await.is_err());
    assert_eq!(
        takes
            .open_take(&u, second.activity_id)
            .await
            .expect("read")
            .map(|t| t.take_id),
        Some(second.take_id)
    );
    assert_eq!(orders.order(&u, o2.order_id).await.expect("read"), None);
    assert_eq!(
        e.storage
            .outbox()
            .count(OutboxState::Pending)
            .await
            .expect("count"),
        1
    );
    tally_agrees_with_a_scan(&e).await;
}

async fn outbox_scan_sees_every_shard_once(b: Backend) {
    let e = env(b, 2, 4).await;
    let (takes, orders, outbox) = (e.storage.takes(), e.storage.orders(), e.storage.outbox());
    let mut expected = HashSet::new();
    let mut dbs = HashSet::new();
    for i in 1..=40 {
        let u = user(&format!("user-{i}"));
        dbs.insert(e.storage.router().route(u.as_str()).db);
        let TakeOutcome::Recorded(t) = takes.record_take(&take(i, &u, 1), 1).await.expect("take")
        else {
            panic!()
        };
        let (o, m) = order(1_000 + i, &t);
        orders.record_win(&o, &m).await.expect("win");
        expected.insert(m.message_id);
    }
    assert_eq!(dbs.len(), 2, "the users spread over both shard databases");
    let due = outbox.due(t0(), 1_000).await.expect("scan");
    let seen: Vec<String> = due.iter().map(|r| r.message.message_id.clone()).collect();
    assert_eq!(seen.len(), 40, "each message exactly once");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);
    // Not yet due: nothing.
    assert!(
        outbox
            .due(t0() - chrono::Duration::seconds(1), 1_000)
            .await
            .expect("scan")
            .is_empty()
    );
    let confirmed: Vec<_> = due.iter().take(25).map(|r| r.message.clone()).collect();
    assert_eq!(outbox.mark_sent(&confirmed, t0()).await.expect("mark"), 25);
    assert_eq!(
        outbox
            .mark_sent(&confirmed, t0())
            .await
            .expect("mark again"),
        0
    );
    assert_eq!(outbox.count(OutboxState::Sent).await.expect("count"), 25);
    assert_eq!(outbox.due(t0(), 1_000).await.expect("scan").len(), 15);
}

async fn rows_land_where_the_router_says(b: Backend) {
    let e = env(b, 2, 4).await;
    let takes = e.storage.takes();
    for (i, name) in ["xiaofuge", "fustack", "小傅哥", "user😀"]
        .iter()
        .enumerate()
    {
        let u = user(name);
        takes
            .record_take(&take(i as i64 + 1, &u, 1), 1)
            .await
            .expect("take");
        let route = e.storage.router().route(name);
        let mut found = Vec::new();
        for r in e.storage.router().routes() {
            let pool = e.storage.router().pool(&r).expect("pool");
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM {} WHERE user_id = ?",
                r.table("user_take")
            ))
            .bind(*name)
            .fetch_one(pool)
            .await
            .expect("count");
            if n > 0 {
                found.push(r);
            }
        }
        assert_eq!(found, vec![route], "{name}");
    }
    let r = e.storage.router().route("xiaofuge");
    assert_eq!(
        (r.db_label(), r.table_suffix()),
        ("01".to_owned(), "_001".to_owned())
    );
    let r = e.storage.router().route("fustack");
    assert_eq!(
        (r.db_label(), r.table_suffix()),
        ("02".to_owned(), "_000".to_owned())
    );
}

async fn rule_trees_round_trip(b: Backend) {
    let e = env(b, 1, 1).await;
    let store = e.storage.rule_trees();
    let tree = RuleTree::new(
        TreeId::new(2_110_081_902).expect("id"),
        "gender and age",
        1.into(),
        vec![
            Node::stem(1, "gender"),
            Node::stem(11, "age"),
            Node::stem(12, "age"),
            Node::fruit(111, "100001"),
            Node::fruit(112, "100002"),
            Node::fruit(121, "100003"),
            Node::fruit(122, "100004"),
        ],
        vec![
            Line::new(1, 11, LineOp::Eq, "man"),
            Line::new(1, 12, LineOp::Eq, "woman"),
            Line::new(11, 111, LineOp::Lt, "25"),
            Line::new(11, 112, LineOp::Ge, "25"),
            Line::new(12, 121, LineOp::Lt, "25"),
            Line::new(12, 122, LineOp::Ge, "25"),
        ],
    )
    .expect("valid tree");
    store.save(&tree).await.expect("save");
    let back = store.tree(tree.id()).await.expect("read").expect("stored");
    assert_eq!(back, tree);
    let facts = Facts::new().with("gender", "man").with("age", "25");
    assert_eq!(back.evaluate(&facts).expect("decision").value, "100002");
    assert!(matches!(
        store.save(&tree).await,
        Err(RepoError::Conflict(_))
    ));
    assert_eq!(
        store.tree(TreeId::new(1).expect("id")).await.expect("read"),
        None
    );
}

async fn stock_sync_only_lowers(b: Backend) {
    let e = env(b, 1, 1).await;
    let store = e.storage.config();
    let d = deployment(1, 7, "x");
    store.deploy(&d).await.expect("deploy");
    let id = d.activity.id();
    assert!(store.sync_stock_left(id, 60).await.expect("sync"));
    assert!(
        !store
            .sync_stock_left(id, 80)
            .await
            .expect("stale sync is ignored")
    );
    assert!(
        !store
            .sync_stock_left(id, 60)
            .await
            .expect("replay is ignored")
    );
    assert_eq!(store.stock_left(id).await.expect("read"), Some(60));
    let award = d.strategy.awards()[1].award_id;
    assert!(
        store
            .sync_award_left(d.strategy.id(), award, 10)
            .await
            .expect("sync")
    );
    assert!(
        !store
            .sync_award_left(d.strategy.id(), award, 20)
            .await
            .expect("sync")
    );
    let left = store.award_stock_left(d.strategy.id()).await.expect("read");
    assert_eq!(
        left,
        vec![(d.strategy.awards()[0].award_id, 1), (award, 10)]
    );
}

fn new_draw(
    take_id: i64,
    who: &str,
    limit: u32,
    key: Option<&str>,
    win: Option<i64>,
) -> DrawRecord {
    let u = user(who);
    let t = take(take_id, &u, 1);
    DrawRecord {
        new_take: Some((t.clone(), limit)),
        take_id: t.take_id,
        user_id: u,
        idempotency_key: key.map(str::to_owned),
        win: win.map(|o| {
            let (o, m) = order(o, &t);
            (o, Some(m))
        }),
        generation: 0,
    }
}

async fn draws_record_takes_orders_and_keys(b: Backend) {
    let e = env(b, 2, 2).await;
    let (draws, takes, orders) = (e.storage.draws(), e.storage.takes(), e.storage.orders());
    let u = user("drawer");
    let a = ActivityId::new(1).expect("id");
    // A win with a new take, under a key.
    assert_eq!(
        draws
            .record_draw(new_draw(1, "drawer", 2, Some("k1"), Some(900)))
            .await,
        Ok(RecordOutcome::Recorded)
    );
    // A loss with a new take.
    assert_eq!(
        draws
            .record_draw(new_draw(2, "drawer", 2, None, None))
            .await,
        Ok(RecordOutcome::Recorded)
    );
    // Over the limit: nothing is written.
    assert_eq!(
        draws
            .record_draw(new_draw(3, "drawer", 2, None, None))
            .await,
        Ok(RecordOutcome::QuotaExhausted)
    );
    assert_eq!(takes.takes_used(&u, a).await.expect("read"), 2);
    let listed = takes.takes(&u, None, Page::new(0, 10)).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|t| t.state == TakeState::Used));
    assert_eq!(
        orders
            .orders(&u, Page::new(0, 10))
            .await
            .expect("list")
            .len(),
        1
    );

    // A key used again is reported, and the replay finds the first draw.
    assert_eq!(
        draws
            .record_draw(new_draw(4, "drawer", 5, Some("k1"), None))
            .await,
        Ok(RecordOutcome::DuplicateKey)
    );
    assert_eq!(
        takes.takes_used(&u, a).await.expect("read"),
        2,
        "the clashing draw left nothing"
    );
    let past = draws
        .find_by_key(&u, "k1")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(past.take.take_id.get(), 1);
    assert_eq!(past.order.map(|o| o.order_id.get()), Some(900));
    assert_eq!(draws.find_by_key(&u, "nope").await.expect("read"), None);
    assert_eq!(
        draws.find_by_key(&user("other"), "k1").await.expect("read"),
        None
    );

    // Drawing an open take granted earlier: consumed once.
    let TakeOutcome::Recorded(open) = takes.record_take(&take(10, &u, 2), 3).await.expect("take")
    else {
        panic!()
    };
    let reuse = |key: &str| DrawRecord {
        new_take: None,
        take_id: open.take_id,
        user_id: u.clone(),
        idempotency_key: Some(key.to_owned()),
        win: Some({
            let (o, m) = order(901, &open);
            (o, Some(m))
        }),
        generation: 0,
    };
    assert_eq!(
        draws.record_draw(reuse("k2")).await,
        Ok(RecordOutcome::Recorded)
    );
    assert_eq!(
        draws.record_draw(reuse("k3")).await,
        Ok(RecordOutcome::TakeNotOpen)
    );
    assert_eq!(
        orders
            .orders(&u, Page::new(0, 10))
            .await
            .expect("list")
            .len(),
        2
    );
    assert_eq!(
        e.storage
            .outbox()
            .count(OutboxState::Pending)
            .await
            .expect("count"),
        2
    );
    tally_agrees_with_a_scan(&e).await;
}

async fn batched_draws_commit_each_draw_once(b: Backend) {
    let e = env(b, 2, 2).await;
    let draws = Arc::new(e.storage.batched_draws(BatchOptions::default()));
    // 300 users drawing at once, each twice with a limit of 1, plus a key clash per user.
    let tasks: Vec<_> = (0..300i64)
        .map(|i| {
            let draws = draws.clone();
            tokio::spawn(async move {
                let who = format!("batch-{i}");
                let first = draws
                    .record_draw(new_draw(
                        i * 10 + 1,
                        &who,
                        1,
                        Some("once"),
                        Some(50_000 + i),
                    ))
                    .await;
                let second = draws
                    .record_draw(new_draw(i * 10 + 2, &who, 1, None, None))
                    .await;
                let clash = draws
                    .record_draw(new_draw(i * 10 + 3, &who, 5, Some("once"), None))
                    .await;
                (first, second, clash)
            })
        })
        .collect();
    for t in tasks {
        let (first, second, clash) = t.await.expect("task");
        assert_eq!(first, Ok(RecordOutcome::Recorded));
        assert_eq!(second, Ok(RecordOutcome::QuotaExhausted));
        assert_eq!(clash, Ok(RecordOutcome::DuplicateKey));
    }
    assert_eq!(
        e.storage
            .outbox()
            .count(OutboxState::Pending)
            .await
            .expect("count"),
        300
    );
    let orders = e.storage.orders();
    for i in (0..300).step_by(37) {
        let who = user(&format!("batch-{i}"));
        assert_eq!(
            orders
                .orders(&who, Page::new(0, 10))
                .await
                .expect("list")
                .len(),
            1
        );
    }
    tally_agrees_with_a_scan(&e).await;
}

/// Records `batch` together and checks each record's outcome.
async fn record_expecting(draws: &DrawStore, batch: Vec<(DrawRecord, RecordOutcome)>) {
    let (records, expected): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let expected: Vec<_> = expected.into_iter().map(Ok).collect();
    assert_eq!(draws.record_draws(&records).await, expected);
}

/// The take ids and numbers of a user's takes, by take id.
async fn numbers(e: &common::Env, who: &str) -> Vec<(i64, u32)> {
    let mut listed: Vec<(i64, u32)> = e
        .storage
        .takes()
        .takes(&user(who), None, Page::new(0, 50))
        .await
        .expect("takes")
        .iter()
        .map(|t| {
            assert_eq!(t.state, TakeState::Used);
            (t.take_id.get(), t.take_number)
        })
        .collect();
    listed.sort_unstable();
    listed
}

/// The order ids of a user's orders, sorted.
async fn order_ids(e: &common::Env, who: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = e
        .storage
        .orders()
        .orders(&user(who), Page::new(0, 50))
        .await
        .expect("orders")
        .iter()
        .map(|o| o.order_id.get())
        .collect();
    ids.sort_unstable();
    ids
}

async fn pending_messages(e: &common::Env) -> u64 {
    e.storage
        .outbox()
        .count(OutboxState::Pending)
        .await
        .expect("count")
}

/// A deployed activity (2) whose stock fence was raised, with the fence's generation.
async fn fenced_activity(e: &common::Env) -> (ActivityId, u64) {
    let config = e.storage.config();
    let fenced = deployment(2, 8, "fenced");
    config.deploy(&fenced).await.expect("deploy");
    let id = fenced.activity.id();
    let (generation, _) = config
        .fence_stock(id, 1)
        .await
        .expect("fence")
        .expect("configured");
    (id, generation)
}

/// The record, moved to `activity` under a claim of `generation`.
fn on_activity(mut r: DrawRecord, activity: ActivityId, generation: u64) -> DrawRecord {
    for t in r.new_take.iter_mut().map(|(t, _)| t) {
        t.activity_id = activity;
    }
    for o in r.win.iter_mut().map(|(o, _)| o) {
        o.activity_id = activity;
    }
    r.generation = generation;
    r
}

/// A batch written with multi-row statements answers each record as if it were written
/// alone, in batch order: a new user's take is 1, a user's takes follow the stored counter
/// and each other, the quota counts takes earlier in the batch, an older stock generation
/// is refused, an order awaiting its address has no message.
async fn multi_row_batches_answer_like_single_draws(b: Backend) {
    use RecordOutcome::{QuotaExhausted, Recorded, StaleGeneration};
    let e = env(b, 1, 4).await;
    let (fenced, generation) = fenced_activity(&e).await;
    let on_fenced = |r, generation| on_activity(r, fenced, generation);
    let draws = e.storage.draws();
    let before = draws.record_draw(new_draw(1, "twice", 3, Some("before"), None));
    assert_eq!(before.await, Ok(Recorded));
    let mut address = new_draw(14, "address", 3, None, Some(914));
    for (_, message) in address.win.iter_mut() {
        *message = None;
    }
    let batch = vec![
        (new_draw(10, "fresh-a", 1, Some("a"), Some(910)), Recorded),
        (new_draw(11, "twice", 3, None, None), Recorded),
        (new_draw(12, "capped", 2, None, Some(912)), Recorded),
        (new_draw(13, "fresh-b", 1, None, None), Recorded),
        (new_draw(17, "twice", 3, Some("again"), Some(917)), Recorded),
        (new_draw(18, "capped", 2, None, None), Recorded),
        (new_draw(19, "capped", 2, None, Some(919)), QuotaExhausted),
        (address, Recorded),
        (
            on_fenced(new_draw(15, "late", 3, None, Some(915)), generation - 1),
            StaleGeneration,
        ),
        (
            on_fenced(new_draw(16, "current", 3, None, Some(916)), generation),
            Recorded,
        ),
        (new_draw(20, "twice", 3, None, None), QuotaExhausted),
    ];
    record_expecting(&draws, batch).await;
    let stats = draws.write_stats();
    assert_eq!((stats.multi_row, stats.fallbacks), (2, 0), "{stats:?}");
    check_numbered_batch(&e, &draws, fenced).await;
    tally_agrees_with_a_scan(&e).await;
}

/// What `multi_row_batches_answer_like_single_draws` leaves stored.
async fn check_numbered_batch(e: &common::Env, draws: &DrawStore, fenced: ActivityId) {
    assert_eq!(numbers(e, "twice").await, vec![(1, 1), (11, 2), (17, 3)]);
    assert_eq!(numbers(e, "capped").await, vec![(12, 1), (18, 2)]);
    assert_eq!(numbers(e, "fresh-a").await, vec![(10, 1)]);
    assert_eq!(numbers(e, "fresh-b").await, vec![(13, 1)]);
    assert_eq!(numbers(e, "late").await, vec![]);
    assert_eq!(numbers(e, "current").await, vec![(16, 1)]);
    let takes = e.storage.takes();
    let a = ActivityId::new(1).expect("id");
    assert_eq!(takes.takes_used(&user("twice"), a).await, Ok(3));
    assert_eq!(takes.takes_used(&user("capped"), a).await, Ok(2));
    let late = takes.takes_used(&user("late"), fenced).await;
    assert_eq!(late, Ok(0));

    assert_eq!(order_ids(e, "capped").await, vec![912]);
    assert_eq!(order_ids(e, "twice").await, vec![917]);
    assert_eq!(order_ids(e, "address").await, vec![914]);
    assert_eq!(order_ids(e, "late").await, Vec::<i64>::new());
    // Messages of 910, 912, 916 and 917: none for the order awaiting its address.
    assert_eq!(pending_messages(e).await, 4);
    let past = draws.find_by_key(&user("twice"), "again").await;
    let past = past.expect("read").expect("found");
    assert_eq!(past.take.take_id.get(), 17);
    assert_eq!(past.order.map(|o| o.order_id.get()), Some(917));
}

/// A reused idempotency key, against a stored draw or inside the batch, makes the database
/// refuse the multi-row insert: the batch is written again record by record, each reuse is
/// answered `DuplicateKey` and leaves nothing, and the other records are recorded, numbered
/// as they would be alone.
async fn multi_row_batches_fall_back_on_a_reused_key(b: Backend) {
    use RecordOutcome::{DuplicateKey, Recorded};
    let e = env(b, 1, 4).await;
    let draws = e.storage.draws();
    let before = draws.record_draw(new_draw(1, "keeper", 3, Some("k"), Some(901)));
    assert_eq!(before.await, Ok(Recorded));
    let batch = vec![
        (new_draw(10, "other", 3, None, Some(910)), Recorded),
        (
            new_draw(11, "keeper", 3, Some("k"), Some(911)),
            DuplicateKey,
        ),
        (new_draw(12, "keeper", 3, Some("fresh"), None), Recorded),
        (new_draw(13, "twin", 3, Some("same"), Some(913)), Recorded),
        (new_draw(14, "twin", 3, Some("same"), None), DuplicateKey),
        (new_draw(15, "twin", 3, None, None), Recorded),
    ];
    record_expecting(&draws, batch).await;
    let stats = draws.write_stats();
    assert_eq!((stats.per_record, stats.fallbacks), (1, 1), "{stats:?}");

    assert_eq!(numbers(&e, "keeper").await, vec![(1, 1), (12, 2)]);
    assert_eq!(numbers(&e, "twin").await, vec![(13, 1), (15, 2)]);
    assert_eq!(numbers(&e, "other").await, vec![(10, 1)]);
    assert_eq!(order_ids(&e, "keeper").await, vec![901]);
    assert_eq!(order_ids(&e, "twin").await, vec![913]);
    assert_eq!(pending_messages(&e).await, 3);
    let first = draws.find_by_key(&user("twin"), "same").await;
    assert_eq!(first.expect("read").map(|p| p.take.take_id.get()), Some(13));
    tally_agrees_with_a_scan(&e).await;
}

/// A take id voided by settling its claim makes the database refuse the multi-row insert:
/// written again record by record, that draw is answered `Voided` and the others recorded.
async fn multi_row_batches_fall_back_on_a_voided_take(b: Backend) {
    use RecordOutcome::{Recorded, Voided};
    let e = env(b, 1, 4).await;
    let draws = e.storage.draws();
    let claim = ClaimRef {
        take_id: TakeId::new(11).expect("id"),
        user_id: user("late"),
        activity_id: ActivityId::new(1).expect("id"),
    };
    assert_eq!(draws.settle_claim(&claim).await, Ok(ClaimFate::Voided));
    let batch = vec![
        (new_draw(10, "early", 3, None, Some(910)), Recorded),
        (new_draw(11, "late", 3, Some("late"), Some(911)), Voided),
        (new_draw(12, "late", 3, None, None), Recorded),
    ];
    record_expecting(&draws, batch).await;
    let stats = draws.write_stats();
    assert_eq!((stats.per_record, stats.fallbacks), (1, 1), "{stats:?}");
    assert_eq!(numbers(&e, "late").await, vec![(12, 1)]);
    assert_eq!(order_ids(&e, "late").await, Vec::<i64>::new());
    assert_eq!(draws.find_by_key(&user("late"), "late").await, Ok(None));
    assert_eq!(order_ids(&e, "early").await, vec![910]);
    tally_agrees_with_a_scan(&e).await;
}

/// A batch whose rows need more bound values than one statement takes (15 per order:
/// 2,300 orders in one table) is split into several statements, and written whole.
async fn multi_row_batches_split_past_the_bind_limit(b: Backend) {
    let e = env(b, 1, 1).await;
    let draws = e.storage.draws();
    let batch: Vec<DrawRecord> = (0..2_300i64)
        .map(|i| new_draw(i + 1, &format!("bulk-{i}"), 1, None, Some(100_000 + i)))
        .collect();
    let outcomes = draws.record_draws(&batch).await;
    assert!(outcomes.iter().all(|o| *o == Ok(RecordOutcome::Recorded)));
    assert_eq!(
        draws.write_stats(),
        WriteStats {
            multi_row: 1,
            per_record: 0,
            fallbacks: 0
        }
    );
    let a = ActivityId::new(1).expect("id");
    let granted = e.storage.orders().grant_counts(a).await.expect("counts");
    assert_eq!(granted, vec![(GrantState::Init, 2_300)]);
    assert_eq!(pending_messages(&e).await, 2_300);
    assert_eq!(numbers(&e, "bulk-2299").await, vec![(2_300, 1)]);
    tally_agrees_with_a_scan(&e).await;
}

/// (activity, award id or 0 for takes) -> count.
type Counted = std::collections::BTreeMap<(i64, i64), i64>;

/// What a scan of every take and order table counts: takes that are not void, orders per
/// award.
async fn scanned(e: &common::Env) -> Counted {
    let mut counted = Counted::new();
    let router = e.storage.router();
    for route in router.routes() {
        let pool = router.pool(&route).expect("pool");
        let takes = format!(
            "SELECT activity_id, 0 AS award_id, COUNT(*) AS n FROM {} WHERE state <> 'void' \
             GROUP BY activity_id",
            route.table("user_take")
        );
        let orders = format!(
            "SELECT activity_id, award_id, COUNT(*) AS n FROM {} GROUP BY activity_id, award_id",
            route.table("win_order")
        );
        for sql in [takes, orders] {
            let rows: Vec<(i64, i64, i64)> =
                sqlx::query_as(&sql).fetch_all(pool).await.expect("scan");
            for (activity, award, n) in rows {
                *counted.entry((activity, award)).or_default() += n;
            }
        }
    }
    counted
}

/// What the activity tally holds, every part added up.
async fn tallied(e: &common::Env) -> Counted {
    let mut counted = Counted::new();
    let router = e.storage.router();
    for route in router.routes().filter(|r| r.table == 0) {
        let pool = router.pool(&route).expect("pool");
        let rows: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT activity_id, award_id, n FROM activity_tally")
                .fetch_all(pool)
                .await
                .expect("tally");
        for (activity, award, n) in rows {
            *counted.entry((activity, award)).or_default() += n;
        }
    }
    counted.retain(|_, n| *n != 0);
    counted
}

/// Every write path keeps the tally equal to a scan of what it stored.
async fn tally_agrees_with_a_scan(e: &common::Env) {
    assert_eq!(tallied(e).await, scanned(e).await, "tally vs scan");
}

/// A database migrated from before the tally gets its stored records counted once, however
/// often the migration runs, and counts new records on top.
async fn the_tally_counts_what_was_stored_before_it(b: Backend) {
    let e = env(b, 2, 4).await;
    let config = e.storage.config();
    let d = deployment(1, 7, "backfilled");
    config.deploy(&d).await.expect("deploy");
    let id = d.activity.id();
    let common = d.strategy.awards()[1].award_id;
    let draws = e.storage.draws();
    for i in 0..10i64 {
        let r = recorded_draw(
            i + 1,
            &user(&format!("old-{i}")),
            &d,
            (i < 4).then_some(common),
            0,
        );
        assert_eq!(draws.record_draw(r).await, Ok(RecordOutcome::Recorded));
    }
    // As stored by the previous version: no tally, its migration not applied.
    let router = e.storage.router();
    for route in router.routes().filter(|r| r.table == 0) {
        let pool = router.pool(&route).expect("pool");
        for sql in [
            "DELETE FROM activity_tally",
            "DELETE FROM schema_version WHERE version = 3 AND scope <> 'global'",
        ] {
            sqlx::query(sql).execute(pool).await.expect("forget");
        }
    }
    assert_eq!(tallied(&e).await, Counted::new());
    e.storage.migrate().await.expect("migrate");
    e.storage.migrate().await.expect("migrate again");
    for route in router.routes().filter(|r| r.table == 0) {
        let pool = router.pool(&route).expect("pool");
        sqlx::query("DELETE FROM schema_version WHERE version = 3 AND scope <> 'global'")
            .execute(pool)
            .await
            .expect("forget");
    }
    e.storage
        .migrate()
        .await
        .expect("a second backfill sets, never adds");
    tally_agrees_with_a_scan(&e).await;
    let left = known_counts(&e, id).await;
    assert_eq!(left.stock_left, 90);
    assert_eq!(
        left.awards_left,
        vec![(d.strategy.awards()[0].award_id, 1), (common, 46)]
    );
    let r = recorded_draw(50, &user("new"), &d, Some(common), 0);
    assert_eq!(draws.record_draw(r).await, Ok(RecordOutcome::Recorded));
    tally_agrees_with_a_scan(&e).await;
    assert_eq!(known_counts(&e, id).await.stock_left, 89);
}

async fn known_counts(e: &common::Env, id: ActivityId) -> StockCounts {
    let counts = e.storage.config().stock_counts(id).await;
    counts.expect("counts").expect("known activity")
}

fn recorded_draw(
    i: i64,
    u: &UserId,
    d: &Deployment,
    award: Option<AwardId>,
    generation: u64,
) -> DrawRecord {
    let mut t = take(i, u, 1);
    t.strategy_id = d.strategy.id();
    let win = award.map(|a| {
        let (mut o, m) = order(70_000 + i, &t);
        o.award.id = a;
        (o, Some(m))
    });
    DrawRecord {
        new_take: Some((t.clone(), 3)),
        take_id: t.take_id,
        user_id: u.clone(),
        idempotency_key: None,
        win,
        generation,
    }
}

async fn stock_counts_come_from_records_and_fences_refuse_older_claims(b: Backend) {
    let e = env(b, 2, 4).await;
    let config = e.storage.config();
    let d = deployment(1, 7, "counted");
    config.deploy(&d).await.expect("deploy");
    let id = d.activity.id();
    let (rare, common) = (
        d.strategy.awards()[0].award_id,
        d.strategy.awards()[1].award_id,
    );
    let counts = |stock_left, rare_left, common_left| StockCounts {
        stock_left,
        awards_left: vec![(rare, rare_left), (common, common_left)],
    };
    assert_eq!(config.stock_counts(id).await, Ok(Some(counts(100, 1, 50))));

    let draws = e.storage.draws();
    for i in 0..12i64 {
        let u = user(&format!("snap-{i}"));
        let r = recorded_draw(i + 1, &u, &d, (i < 5).then_some(common), 0);
        assert_eq!(draws.record_draw(r).await, Ok(RecordOutcome::Recorded));
    }
    assert_eq!(config.stock_counts(id).await, Ok(Some(counts(88, 1, 45))));
    // Synced values are for display: a lower (leaked) value never reaches a reload.
    config
        .sync_stock(id, &counts(80, 0, 60))
        .await
        .expect("sync");
    assert_eq!(config.stock_counts(id).await, Ok(Some(counts(88, 1, 45))));

    // A reload fences every shard, then counts.
    assert_eq!(
        config.fence_stock(id, 5).await,
        Ok(Some((5, counts(88, 1, 45))))
    );
    // The next one goes above every fence, whatever it asks for.
    assert_eq!(
        config.fence_stock(id, 1).await,
        Ok(Some((6, counts(88, 1, 45))))
    );
    // A record of a claim taken before the last reload is refused, in every shard.
    for i in 0..4i64 {
        let u = user(&format!("late-{i}"));
        let r = recorded_draw(100 + i, &u, &d, Some(common), 5);
        assert_eq!(
            draws.record_draw(r).await,
            Ok(RecordOutcome::StaleGeneration)
        );
    }
    assert_eq!(config.stock_counts(id).await, Ok(Some(counts(88, 1, 45))));
    let current = recorded_draw(200, &user("current"), &d, Some(rare), 6);
    assert_eq!(
        draws.record_draw(current).await,
        Ok(RecordOutcome::Recorded)
    );
    assert_eq!(config.stock_counts(id).await, Ok(Some(counts(87, 0, 45))));

    let unknown = ActivityId::new(404).expect("id");
    assert_eq!(config.stock_counts(unknown).await, Ok(None));
    assert_eq!(config.fence_stock(unknown, 1).await, Ok(None));
    tally_agrees_with_a_scan(&e).await;
}

async fn settling_a_claim_voids_an_unrecorded_take_for_good(b: Backend) {
    let e = env(b, 2, 4).await;
    let config = e.storage.config();
    let d = deployment(1, 7, "voided");
    config.deploy(&d).await.expect("deploy");
    let draws = e.storage.draws();
    let u = user("settled");
    let recorded = recorded_draw(1, &u, &d, None, 0);
    assert_eq!(
        draws.record_draw(recorded).await,
        Ok(RecordOutcome::Recorded)
    );
    let pair = |take: i64| ClaimRef {
        take_id: TakeId::new(take).expect("id"),
        user_id: u.clone(),
        activity_id: d.activity.id(),
    };
    assert_eq!(draws.settle_claim(&pair(1)).await, Ok(ClaimFate::Recorded));
    // A claim whose draw never arrived is voided; asking again gives the same answer.
    assert_eq!(draws.settle_claim(&pair(2)).await, Ok(ClaimFate::Voided));
    assert_eq!(draws.settle_claim(&pair(2)).await, Ok(ClaimFate::Voided));
    // The draw arriving late is refused, and nothing of it is stored.
    let mut late = recorded_draw(2, &u, &d, Some(d.strategy.awards()[1].award_id), 0);
    late.idempotency_key = Some("late".into());
    assert_eq!(draws.record_draw(late).await, Ok(RecordOutcome::Voided));
    assert_eq!(draws.find_by_key(&u, "late").await, Ok(None));
    // Tombstones are not takes: listings, counters and stock counts pass over them.
    let takes = e.storage.takes();
    let listed = takes
        .takes(&u, None, Page::new(0, 10))
        .await
        .expect("takes");
    assert_eq!(
        listed.iter().map(|t| t.take_id.get()).collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(takes.takes_used(&u, d.activity.id()).await, Ok(1));
    assert_eq!(
        config
            .stock_counts(d.activity.id())
            .await
            .expect("counts")
            .map(|c| c.stock_left),
        Some(99)
    );
    assert!(
        e.storage
            .orders()
            .orders(&u, Page::new(0, 10))
            .await
            .expect("orders")
            .is_empty()
    );
    tally_agrees_with_a_scan(&e).await;
}

async fn relays_claim_disjoint_rows_and_park_failures(b: Backend) {
    let e = env(b, 2, 2).await;
    let (takes, orders, outbox) = (
        e.storage.takes(),
        e.storage.orders(),
        Arc::new(e.storage.outbox()),
    );
    for i in 1..=60 {
        let u = user(&format!("relay-{i}"));
        let TakeOutcome::Recorded(t) = takes.record_take(&take(i, &u, 1), 1).await.expect("take")
        else {
            panic!()
        };
        let (o, m) = order(2_000 + i, &t);
        orders.record_win(&o, &m).await.expect("win");
    }
    let lease = chrono::Duration::seconds(30);
    // Two relays claiming at once never get the same message.
    let (a, b2) = tokio::join!(
        outbox.claim_due(t0(), lease, 20),
        outbox.claim_due(t0(), lease, 20)
    );
    let (a, b2) = (a.expect("claim"), b2.expect("claim"));
    let ids_a: HashSet<_> = a.iter().map(|p| p.message.message_id.clone()).collect();
    let ids_b: HashSet<_> = b2.iter().map(|p| p.message.message_id.clone()).collect();
    assert!(ids_a.is_disjoint(&ids_b), "a message was claimed twice");
    assert!(a.iter().chain(&b2).all(|p| p.attempts == 0));
    // Claimed rows are leased: not due again until the lease ends.
    let rest = outbox.claim_due(t0(), lease, 100).await.expect("claim");
    assert_eq!(ids_a.len() + ids_b.len() + rest.len(), 60);
    assert!(
        outbox
            .claim_due(t0(), lease, 100)
            .await
            .expect("claim")
            .is_empty()
    );
    let again = outbox
        .claim_due(t0() + lease + chrono::Duration::seconds(1), lease, 100)
        .await
        .expect("claim");
    assert_eq!(again.len(), 60, "expired leases are claimable again");
    assert!(again.iter().all(|p| p.attempts == 1));

    let all: Vec<_> = again.iter().map(|p| p.message.clone()).collect();
    assert_eq!(outbox.mark_sent(&all[..50], t0()).await.expect("sent"), 50);
    outbox
        .retry_later(&all[50], t0(), "broker said no", false)
        .await
        .expect("retry");
    outbox
        .retry_later(&all[51], t0(), "too many attempts", true)
        .await
        .expect("park");
    let backlog = outbox.backlog().await.expect("backlog");
    assert_eq!((backlog.pending, backlog.parked), (9, 1));
    let due = outbox
        .claim_due(t0() + chrono::Duration::days(1), lease, 100)
        .await
        .expect("claim");
    assert_eq!(due.len(), 9, "sent and parked messages are not claimed");
}

async fn grants_apply_once_per_message(b: Backend) {
    let e = env(b, 2, 2).await;
    let (takes, orders) = (e.storage.takes(), e.storage.orders());
    let u = user("granted");
    let TakeOutcome::Recorded(t) = takes.record_take(&take(1, &u, 1), 1).await.expect("take")
    else {
        panic!()
    };
    let (o, m) = order(3_000, &t);
    orders.record_win(&o, &m).await.expect("win");
    assert!(!orders.is_processed(&u, &m.message_id).await.expect("read"));
    assert!(
        orders
            .apply_grant(
                &u,
                o.order_id,
                &m.message_id,
                GrantState::Complete,
                Some("code"),
                t0()
            )
            .await
            .expect("grant")
    );
    assert!(orders.is_processed(&u, &m.message_id).await.expect("read"));
    // A redelivery changes nothing.
    assert!(
        !orders
            .apply_grant(
                &u,
                o.order_id,
                &m.message_id,
                GrantState::Failed,
                None,
                t0()
            )
            .await
            .expect("grant")
    );
    let stored = orders
        .order(&u, o.order_id)
        .await
        .expect("read")
        .expect("order");
    assert_eq!(
        (stored.grant_state, stored.delivery.as_deref()),
        (GrantState::Complete, Some("code"))
    );
}

async fn job_leases_have_one_holder(b: Backend) {
    let e = env(b, 1, 1).await;
    let leases = e.storage.leases();
    let ttl = chrono::Duration::seconds(10);
    assert!(
        leases
            .try_lease("scan", "a", t0(), ttl)
            .await
            .expect("lease")
    );
    assert!(
        !leases
            .try_lease("scan", "b", t0() + chrono::Duration::seconds(5), ttl)
            .await
            .expect("lease")
    );
    assert!(
        leases
            .try_lease("scan", "a", t0() + chrono::Duration::seconds(5), ttl)
            .await
            .expect("renew")
    );
    assert!(
        leases
            .try_lease("other", "b", t0(), ttl)
            .await
            .expect("another job")
    );
    // Expired: another holder takes over.
    assert!(
        leases
            .try_lease("scan", "b", t0() + chrono::Duration::seconds(16), ttl)
            .await
            .expect("take over")
    );
    assert!(
        !leases
            .try_lease("scan", "a", t0() + chrono::Duration::seconds(17), ttl)
            .await
            .expect("lease")
    );
    leases.release("scan", "b").await.expect("release");
    assert!(
        leases
            .try_lease("scan", "a", t0() + chrono::Duration::seconds(18), ttl)
            .await
            .expect("after release")
    );
    // Contended: of many instances at once, one wins.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let leases = leases.clone();
            tokio::spawn(async move { leases.try_lease("race", &format!("h{i}"), t0(), ttl).await })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        if t.await.expect("task").expect("lease") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn worker_leases_are_unique_expire_and_keep_their_high_water(b: Backend) {
    use lottery_ids::{AcquiredWorker, WorkerLeases};
    let e = env(b, 1, 1).await;
    let leases = e.storage.leases();
    let now = 1_800_000_000_000i64;
    let got = |worker_id, high_water_unix_ms| {
        Ok(Some(AcquiredWorker {
            worker_id,
            high_water_unix_ms,
        }))
    };
    assert_eq!(leases.acquire("a", now, now + 10_000).await, got(0, 0));
    assert_eq!(leases.acquire("b", now, now + 10_000).await, got(1, 0));
    // Only the holder renews.
    assert_eq!(leases.renew(0, "b", now + 20_000, 1).await, Ok(false));
    assert_eq!(
        leases.renew(0, "a", now + 20_000, now + 25_000).await,
        Ok(true)
    );
    // Once both expired, the lowest is taken over with its high water; its old holder has
    // lost it.
    let later = now + 30_000;
    assert_eq!(
        leases.acquire("c", later, later + 10_000).await,
        got(0, now + 25_000)
    );
    assert_eq!(leases.renew(0, "a", later + 20_000, 0).await, Ok(false));
    // A released id is free at once and keeps the high water recorded on release.
    WorkerLeases::release(&leases, 1, "b", now + 9_000)
        .await
        .expect("release");
    assert_eq!(
        leases.acquire("d", now + 1, now + 10_000).await,
        got(1, now + 9_000)
    );

    // Racing instances never share an id.
    let racers: Vec<_> = (0..20)
        .map(|i| {
            let leases = leases.clone();
            tokio::spawn(async move {
                leases
                    .acquire(&format!("racer-{i}"), later, later + 60_000)
                    .await
                    .expect("acquire")
                    .expect("a free id")
                    .worker_id
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for r in racers {
        assert!(ids.insert(r.await.expect("task")), "an id given twice");
    }
    assert_eq!(ids.len(), 20);

    // With every id held, there is none to give.
    while leases
        .acquire("filler", later, later + 60_000)
        .await
        .expect("acquire")
        .is_some()
    {}
    assert_eq!(
        leases.acquire("late", later, later + 60_000).await,
        Ok(None)
    );
}

/// A won order of `who` recorded as a draw records it: awaiting its address (no outbox row)
/// or `init` (with its outbox row). Returns the order and the message that delivers it.
async fn recorded_win(
    e: &common::Env,
    take_id: i64,
    order_id: i64,
    who: &UserId,
    activity: i64,
    awaiting: bool,
) -> (WinOrder, OutboxMessage) {
    let t = take(take_id, who, activity);
    let (mut o, m) = order(order_id, &t);
    if awaiting {
        o.grant_state = GrantState::AwaitingAddress;
    }
    let record = DrawRecord {
        new_take: Some((t.clone(), 100)),
        take_id: t.take_id,
        user_id: who.clone(),
        idempotency_key: None,
        win: Some((o.clone(), (!awaiting).then(|| m.clone()))),
        generation: 0,
    };
    assert_eq!(
        e.storage.draws().record_draw(record).await,
        Ok(RecordOutcome::Recorded)
    );
    (o, m)
}

async fn addresses_are_given_once(b: Backend) {
    let e = env(b, 2, 2).await;
    let orders = Arc::new(e.storage.orders());
    let pending = || async {
        e.storage
            .outbox()
            .count(OutboxState::Pending)
            .await
            .expect("count")
    };
    let u = user("shipper");
    let (o, m) = recorded_win(&e, 1, 800, &u, 1, true).await;
    let stored = orders
        .order(&u, o.order_id)
        .await
        .expect("read")
        .expect("order");
    assert_eq!(stored.grant_state, GrantState::AwaitingAddress);
    assert_eq!(
        pending().await,
        0,
        "nothing to deliver while the address is missing"
    );

    // Eight callers at once: one moves the order and writes the message.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (orders, u, m) = (orders.clone(), u.clone(), m.clone());
            tokio::spawn(async move { orders.give_address(&u, o.order_id, &m).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for r in racers {
        outcomes.push(r.await.expect("task").expect("give"));
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|g| **g == GiveAddress::Given)
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|g| matches!(
            g,
            GiveAddress::Given | GiveAddress::NotAwaiting(GrantState::Init)
        )),
        "{outcomes:?}"
    );
    assert_eq!(pending().await, 1, "one delivery message");
    let due = e.storage.outbox().due(t0(), 10).await.expect("scan");
    assert_eq!(
        due.iter().map(|r| r.message.clone()).collect::<Vec<_>>(),
        vec![m.clone()]
    );
    assert_eq!(
        orders
            .order(&u, o.order_id)
            .await
            .expect("read")
            .map(|o| o.grant_state),
        Some(GrantState::Init)
    );

    // Later: the order tells where it is; nothing more is written.
    assert_eq!(
        orders.give_address(&u, o.order_id, &m).await,
        Ok(GiveAddress::NotAwaiting(GrantState::Init))
    );
    assert!(
        orders
            .finish_grant(&u, o.order_id, GrantState::Complete, Some("shipped"), t0())
            .await
            .expect("grant")
    );
    assert_eq!(
        orders.give_address(&u, o.order_id, &m).await,
        Ok(GiveAddress::NotAwaiting(GrantState::Complete))
    );
    // An order that never waited, an unknown order, another user's order.
    let (plain, plain_message) = recorded_win(&e, 2, 801, &u, 1, false).await;
    assert_eq!(
        orders
            .give_address(&u, plain.order_id, &plain_message)
            .await,
        Ok(GiveAddress::NotAwaiting(GrantState::Init))
    );
    let (_, unknown) = order(802, &take(3, &u, 1));
    assert_eq!(
        orders
            .give_address(&u, lottery_domain::OrderId::new(802).expect("id"), &unknown)
            .await,
        Ok(GiveAddress::NotFound)
    );
    let (theirs, theirs_message) = recorded_win(&e, 4, 803, &user("someone"), 1, true).await;
    assert_eq!(
        orders
            .give_address(&u, theirs.order_id, &theirs_message)
            .await,
        Ok(GiveAddress::NotFound)
    );
    assert_eq!(
        pending().await,
        2,
        "one message per order given or drawn with an address"
    );
}

async fn orders_page_by_state_across_shards(b: Backend) {
    let e = env(b, 2, 4).await;
    let orders = e.storage.orders();
    // Consecutive order ids belong to users spread over every shard table.
    let mut awaiting = Vec::new();
    let mut of_activity_2 = Vec::new();
    let mut tables = HashSet::new();
    for i in 1..=40i64 {
        let u = user(&format!("ship-{i}"));
        tables.insert(e.storage.router().route(u.as_str()));
        let waits = i % 4 != 0;
        let activity = 1 + i % 2;
        let (o, _) = recorded_win(&e, i, 9_000 + i, &u, activity, waits).await;
        if waits {
            awaiting.push(o.order_id);
            if activity == 2 {
                of_activity_2.push(o.order_id);
            }
        }
    }
    assert!(tables.len() > 4, "the orders spread over the shard tables");
    let list = |state, activity, after, limit| {
        let orders = &orders;
        async move {
            orders
                .orders_in_state(&OrderFilter { state, activity }, after, limit)
                .await
                .expect("list")
        }
    };
    // Paging by id with pages of 7: every awaiting order once, in id order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(GrantState::AwaitingAddress, None, after, 7).await;
        assert!(page.len() <= 7);
        assert!(
            page.iter()
                .all(|o| o.grant_state == GrantState::AwaitingAddress)
        );
        seen.extend(page.iter().map(|o| o.order_id));
        if page.len() < 7 {
            break;
        }
        after = page.last().map(|o| o.order_id);
    }
    assert_eq!(seen, awaiting);
    let activity = ActivityId::new(2).expect("id");
    let theirs = list(GrantState::AwaitingAddress, Some(activity), None, 200).await;
    assert_eq!(
        theirs.iter().map(|o| o.order_id).collect::<Vec<_>>(),
        of_activity_2
    );
    assert!(theirs.iter().all(|o| o.activity_id == activity));
    assert_eq!(list(GrantState::Init, None, None, 200).await.len(), 10);
    assert!(list(GrantState::Complete, None, None, 200).await.is_empty());

    // An order given its address leaves the listing.
    let first = list(GrantState::AwaitingAddress, None, None, 1).await;
    let [first] = first.as_slice() else {
        panic!("one order expected, got {first:?}")
    };
    let (_, m) = order(
        first.order_id.get(),
        &take(first.take_id.get(), &first.user_id, 1),
    );
    assert_eq!(
        orders
            .give_address(&first.user_id, first.order_id, &m)
            .await,
        Ok(GiveAddress::Given)
    );
    let rest = list(GrantState::AwaitingAddress, None, None, 200).await;
    assert_eq!(rest.len(), awaiting.len() - 1);
    assert!(rest.iter().all(|o| o.order_id != first.order_id));
}
