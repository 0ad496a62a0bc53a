//! Worker id leases as an instance holds them: unique, renewed, lost and taken again, given
//! up on a clean stop; no ids without a lease.

use std::sync::Arc;
use std::time::Duration;

use lottery_app::WorkerIdentity;
use lottery_domain::{Clock, FixedClock};
use lottery_ids::{IdGenError, IdSource, SnowflakeParts, WorkerLeases};
use lottery_storage::Storage;
use lottery_testkit::FreshSqlite;

const TTL: Duration = Duration::from_secs(10);

async fn leases() -> (Arc<dyn WorkerLeases>, Storage, FreshSqlite) {
    let fresh = FreshSqlite::create("ids", 2).expect("SQLite files");
    let config =
        db_router::RouterConfig::new(fresh.url(0).to_owned(), vec![fresh.url(1).to_owned()], 1);
    let storage = Storage::connect(&config).await.expect("storage");
    storage.migrate().await.expect("migrate");
    (Arc::new(storage.leases()), storage, fresh)
}

fn worker_of(id: i64) -> u16 {
    SnowflakeParts::decode(id).expect("snowflake").worker
}

#[tokio::test]
async fn instances_hold_distinct_ids_and_a_lost_lease_stops_ids_until_another_is_held() {
    let (leases, _storage, _files) = leases().await;
    let clock = Arc::new(FixedClock::new(chrono::Utc::now()));
    let as_clock: Arc<dyn Clock> = clock.clone();
    let a = WorkerIdentity::acquire(leases.clone(), as_clock.clone(), "a".into(), TTL)
        .await
        .expect("a");
    let b = WorkerIdentity::acquire(leases.clone(), as_clock.clone(), "b".into(), TTL)
        .await
        .expect("b");
    assert_ne!(a.worker_id(), b.worker_id());
    let first = a.ids().take_id().expect("id").get();
    assert_eq!(u32::from(worker_of(first)), a.worker_id());

    // `a` stops renewing (stalled, partitioned) past its lease: no more ids from it.
    clock.advance(chrono::Duration::seconds(11));
    b.renew().await.expect("b keeps renewing");
    assert!(!a.holds());
    assert_eq!(a.ids().take_id(), Err(IdGenError::NoWorkerLease));
    // Meanwhile another instance takes the expired id.
    let c = WorkerIdentity::acquire(leases.clone(), as_clock.clone(), "c".into(), TTL)
        .await
        .expect("c");
    assert_eq!(c.worker_id(), a.worker_id(), "the expired id is taken over");
    let taken_over = c.ids().take_id().expect("id").get();
    assert!(taken_over > first, "above the previous holder's ids");

    // `a` comes back: its renewal finds the id lost and takes another one.
    a.renew().await.expect("renew");
    assert!(a.holds());
    assert_ne!(a.worker_id(), c.worker_id());
    let again = a.ids().take_id().expect("id").get();
    assert_eq!(u32::from(worker_of(again)), a.worker_id());
    assert!(again > first, "still increasing");

    // A clean stop frees the id at once.
    let freed = b.worker_id();
    b.release().await;
    assert!(!b.holds());
    let d = WorkerIdentity::acquire(leases, as_clock, "d".into(), TTL)
        .await
        .expect("d");
    assert_eq!(d.worker_id(), freed);
}
