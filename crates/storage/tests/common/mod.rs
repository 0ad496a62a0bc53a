//! Fresh storage on either backend, and domain fixtures, for the contract tests.
#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use db_router::RouterConfig;
use lottery_activity::{
    Activity, ActivitySpec, Deployment, OutboxMessage, TakeState, UserTake, WinOrder,
};
use lottery_award::{Award, AwardKind, AwardRegistry, GrantState};
use lottery_domain::{ActivityId, AwardId, OrderId, StrategyId, TakeId, UserId};
use lottery_storage::Storage;
use lottery_strategy::{DrawMode, Strategy, StrategyAward};
use lottery_testkit::{FreshMysql, FreshSqlite, Service};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MariaDb,
}

/// Keeps the fresh databases alive as long as the storage is used.
pub enum Guard {
    Sqlite(FreshSqlite),
    MariaDb(FreshMysql),
}

pub struct Env {
    pub storage: Storage,
    pub urls: Vec<String>,
    pub tb_count: u32,
    _guard: Guard,
}

/// One global database plus `db_count` shards of `tb_count` tables each, freshly created
/// and migrated.
pub async fn env(backend: Backend, db_count: u32, tb_count: u32) -> Env {
    let n = db_count as usize + 1;
    let (urls, guard) = match backend {
        Backend::Sqlite => {
            let fresh = FreshSqlite::create("storage", n).expect("temporary SQLite files");
            (fresh.urls().to_vec(), Guard::Sqlite(fresh))
        }
        Backend::MariaDb => {
            Service::MariaDb.require().await;
            let fresh = FreshMysql::create("storage", n)
                .await
                .expect("fresh MariaDB databases");
            (fresh.urls().to_vec(), Guard::MariaDb(fresh))
        }
    };
    let storage = connect(&urls, tb_count).await;
    storage.migrate().await.expect("migrations apply");
    Env {
        storage,
        urls,
        tb_count,
        _guard: guard,
    }
}

pub async fn connect(urls: &[String], tb_count: u32) -> Storage {
    let mut config = RouterConfig::new(urls[0].clone(), urls[1..].to_vec(), tb_count);
    config.max_connections = 16;
    Storage::connect(&config).await.expect("storage connects")
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
        .single()
        .expect("time")
}

pub fn user(s: &str) -> UserId {
    UserId::new(s).expect("user id")
}

pub fn deployment(activity: i64, strategy: i64, name: &str) -> Deployment {
    let spec = ActivitySpec {
        name: name.into(),
        description: "A campaign".into(),
        begin: t0(),
        end: t0() + Duration::days(7),
        stock: 100,
        take_limit: 3,
    };
    let activity = Activity::new(
        ActivityId::new(activity).expect("id"),
        spec,
        StrategyId::new(strategy).expect("id"),
        "admin",
    )
    .expect("activity");
    let award_ids = [strategy * 10 + 1, strategy * 10 + 2];
    let strategy = Strategy::new(
        StrategyId::new(strategy).expect("id"),
        DrawMode::Single,
        vec![
            StrategyAward {
                award_id: AwardId::new(award_ids[0]).expect("id"),
                rate: "0.0005".parse().expect("rate"),
                count: 1,
            },
            StrategyAward {
                award_id: AwardId::new(award_ids[1]).expect("id"),
                rate: "0.25".parse().expect("rate"),
                count: 50,
            },
        ],
        AwardId::new(award_ids[1]).ok(),
    )
    .expect("strategy");
    let awards = vec![
        Award::new(
            AwardId::new(award_ids[0]).expect("id"),
            AwardKind::PHYSICAL,
            "Phone",
            "SKU-PHONE",
        )
        .expect("award"),
        Award::new(
            AwardId::new(award_ids[1]).expect("id"),
            AwardKind::COUPON,
            "10% off",
            "TEN-OFF",
        )
        .expect("award"),
    ];
    Deployment::new(activity, strategy, awards, &AwardRegistry::with_builtins())
        .expect("deployment")
}

pub fn take(id: i64, who: &UserId, activity: i64) -> UserTake {
    UserTake {
        take_id: TakeId::new(id).expect("id"),
        user_id: who.clone(),
        activity_id: ActivityId::new(activity).expect("id"),
        strategy_id: StrategyId::new(7).expect("id"),
        take_number: 0,
        taken_at: t0(),
        state: TakeState::Open,
    }
}

pub fn order(order: i64, take: &UserTake) -> (WinOrder, OutboxMessage) {
    let award = Award::new(
        AwardId::new(72).expect("id"),
        AwardKind::COUPON,
        "10% off",
        "TEN-OFF",
    )
    .expect("award");
    let order = WinOrder {
        order_id: OrderId::new(order).expect("id"),
        take_id: take.take_id,
        user_id: take.user_id.clone(),
        activity_id: take.activity_id,
        strategy_id: take.strategy_id,
        mode: DrawMode::Single,
        award: award.clone(),
        fallback: false,
        grant_state: GrantState::Init,
        delivery: None,
        created_at: t0(),
        granted_at: None,
    };
    let invoice = lottery_activity::AwardInvoice {
        version: lottery_activity::AwardInvoice::VERSION,
        user_id: take.user_id.clone(),
        order_id: order.order_id,
        activity_id: take.activity_id,
        award,
        shipping: None,
    };
    let message = OutboxMessage::invoice(&invoice, t0()).expect("message");
    (order, message)
}

/// Declares each listed contract test once per backend; the MariaDB ones need the server.
#[macro_export]
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[ignore = "needs MariaDB at 127.0.0.1:3306 (LOTTERY_TEST_MYSQL_URL)"]
                async fn $name() {
                    super::$name($crate::common::Backend::MariaDb).await;
                }
            )*
        }
    };
}
