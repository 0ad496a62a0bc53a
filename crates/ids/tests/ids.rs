//! Ordering, uniqueness and failure behaviour of the id generators.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread;

use chrono::{DateTime, Duration, TimeZone, Utc};
use lottery_domain::{Clock, FixedClock};
use lottery_ids::{
    EPOCH_MILLIS, Generators, IdGenError, IdSource, MAX_SEQUENCE, RandomNumber11, ShortCode,
    Snowflake, SnowflakeParts, Validity, epoch,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, s)
        .single()
        .expect("valid date")
}

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::new(at(2026, 11, 23, 8, 30, 0)))
}

fn millis_since_epoch(t: DateTime<Utc>) -> u64 {
    (t - epoch()).num_milliseconds() as u64
}

#[test]
fn ids_strictly_increase_as_the_clock_moves() {
    let clock = clock();
    let ids = Snowflake::new(7, clock.clone()).expect("worker 7");
    let mut last = 0;
    for i in 0..5_000 {
        if i % 3 == 0 {
            clock.advance(Duration::milliseconds(1));
        }
        let id = ids.next_id().expect("id");
        assert!(id > last, "id {id} after {last}");
        last = id;
    }
}

#[test]
fn ten_thousand_ids_in_one_millisecond_borrow_the_next_ones() {
    let clock = clock();
    let now_ms = millis_since_epoch(clock.now());
    let ids = Snowflake::new(3, clock.clone()).expect("worker 3");
    let all: Vec<i64> = (0..10_000).map(|_| ids.next_id().expect("id")).collect();
    assert!(all.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len());

    let parts: Vec<SnowflakeParts> = all
        .iter()
        .map(|&id| SnowflakeParts::decode(id).expect("positive"))
        .collect();
    let per_ms = usize::from(MAX_SEQUENCE) + 1;
    assert_eq!(
        parts[0],
        SnowflakeParts {
            millis: now_ms,
            worker: 3,
            sequence: 0
        }
    );
    assert_eq!(parts[per_ms - 1].millis, now_ms);
    assert_eq!(
        parts[per_ms],
        SnowflakeParts {
            millis: now_ms + 1,
            worker: 3,
            sequence: 0
        }
    );
    assert_eq!(parts[9_999].millis, now_ms + 2);

    // Once the wall clock passes the borrowed time, ids follow the wall clock again.
    clock.advance(Duration::milliseconds(10));
    let next = SnowflakeParts::decode(ids.next_id().expect("id")).expect("positive");
    assert_eq!(
        next,
        SnowflakeParts {
            millis: now_ms + 10,
            worker: 3,
            sequence: 0
        }
    );
}

#[test]
fn the_wall_clock_catching_up_with_borrowed_time_is_not_going_back() {
    let clock = clock();
    let ids = Snowflake::new(3, clock.clone()).expect("worker 3");
    let burst: Vec<i64> = (0..5_000).map(|_| ids.next_id().expect("id")).collect();
    // The wall clock is now behind the logical time, yet has not gone back.
    clock.advance(Duration::milliseconds(1));
    let after = ids.next_id().expect("clock moved forward");
    assert!(burst.iter().all(|&id| id < after));
}

#[test]
fn a_clock_going_back_is_refused_until_it_catches_up() {
    let clock = clock();
    let ids = Snowflake::new(1, clock.clone()).expect("worker 1");
    let before = ids.next_id().expect("id");
    clock.advance(Duration::milliseconds(-5));
    assert_eq!(
        ids.next_id(),
        Err(IdGenError::ClockMovedBackwards { by_ms: 5 })
    );
    clock.advance(Duration::milliseconds(2));
    assert_eq!(
        ids.next_id(),
        Err(IdGenError::ClockMovedBackwards { by_ms: 3 })
    );
    clock.advance(Duration::milliseconds(3));
    let same_ms = ids.next_id().expect("caught up");
    assert!(same_ms > before);
    clock.advance(Duration::milliseconds(1));
    let later = ids.next_id().expect("moved on");
    assert!(later > same_ms);
}

#[test]
fn threads_never_share_an_id() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 50_000;
    let clock = clock();
    let ids = Arc::new(Snowflake::new(9, clock.clone()).expect("worker 9"));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let ids = Arc::clone(&ids);
            let clock = Arc::clone(&clock);
            thread::spawn(move || {
                let mut mine = Vec::with_capacity(PER_THREAD);
                for i in 0..PER_THREAD {
                    // One thread moves the clock so ids span real and borrowed milliseconds.
                    if t == 0 && i % 1_000 == 0 {
                        clock.advance(Duration::milliseconds(1));
                    }
                    mine.push(ids.next_id().expect("id"));
                }
                // Each thread sees its own ids in increasing order.
                assert!(mine.windows(2).all(|w| w[0] < w[1]));
                mine
            })
        })
        .collect();
    let mut all = HashSet::with_capacity(THREADS * PER_THREAD);
    for handle in handles {
        for id in handle.join().expect("thread finished") {
            assert!(all.insert(id), "duplicate id {id}");
        }
    }
    assert_eq!(all.len(), THREADS * PER_THREAD);
}

#[test]
fn decode_round_trips() {
    let clock = clock();
    let ids = Snowflake::new(1023, clock.clone()).expect("worker 1023");
    let id = ids.next_id().expect("id");
    let parts = Snowflake::decode(id).expect("positive");
    assert_eq!(parts.worker, 1023);
    assert_eq!(parts.sequence, 0);
    assert_eq!(parts.timestamp(), clock.now());
    assert_eq!(parts.encode(), Some(id));
    let second = Snowflake::decode(ids.next_id().expect("id")).expect("positive");
    assert_eq!(second.sequence, 1);
}

#[test]
fn worker_ids_above_1023_are_refused() {
    let err = Snowflake::new(1024, clock()).expect_err("out of range");
    assert_eq!(
        err,
        IdGenError::WorkerIdOutOfRange {
            worker_id: 1024,
            max: 1023
        }
    );
    assert_eq!(err.to_string(), "worker id 1024 is out of range 0..=1023");
    assert!(Snowflake::new(70_000, clock()).is_err());
    assert!(Generators::new(2048, clock()).is_err());
}

#[test]
fn short_codes_start_with_the_date() {
    let clock = clock();
    let codes = ShortCode::with_seed(clock.clone(), 42);
    for _ in 0..1_000 {
        let code = codes.next_code().to_string();
        assert_eq!(code.len(), 12, "{code}");
        assert!(code.starts_with("261123"), "{code}");
    }
    clock.set(at(2030, 1, 5, 23, 59, 59));
    assert!(codes.next_code().to_string().starts_with("300105"));

    let mut rng = StdRng::seed_from_u64(1);
    let code = ShortCode::generate(at(2024, 12, 31, 0, 0, 0), &mut rng);
    assert_eq!(code / 1_000_000, 241_231);
}

#[test]
fn seeded_generators_repeat_themselves() {
    let a = ShortCode::with_seed(clock(), 5);
    let b = ShortCode::with_seed(clock(), 5);
    let a: Vec<i64> = (0..10).map(|_| a.next_code()).collect();
    let b: Vec<i64> = (0..10).map(|_| b.next_code()).collect();
    assert_eq!(a, b);
}

#[test]
fn the_default_source_wires_every_kind() {
    let clock = clock();
    let ids = Generators::with_seed(4, clock.clone(), 7).expect("worker 4");
    let source: &dyn IdSource = &ids;
    let take = source.take_id().expect("take").get();
    let order = source.order_id().expect("order").get();
    let award = source.award_id().expect("award").get();
    let tree = source.tree_id().expect("tree").get();
    assert!(take < order && order < award && award < tree);
    assert_eq!(Snowflake::decode(tree).map(|p| p.worker), Some(4));
    assert!(source.activity_id().to_string().starts_with("261123"));
    assert_eq!(source.strategy_id().to_string().len(), 11);

    clock.advance(Duration::seconds(-1));
    assert_eq!(
        source.order_id(),
        Err(IdGenError::ClockMovedBackwards { by_ms: 1_000 })
    );
}

#[test]
fn random_numbers_from_the_os_have_eleven_digits() {
    let numbers = RandomNumber11::new();
    for _ in 0..10_000 {
        let n = numbers.next_number();
        assert!((RandomNumber11::MIN..=RandomNumber11::MAX).contains(&n));
    }
}

proptest! {
    #[test]
    fn random_numbers_always_have_eleven_digits(seed in any::<u64>()) {
        let numbers = RandomNumber11::with_seed(seed);
        for _ in 0..100 {
            prop_assert_eq!(numbers.next_number().to_string().len(), 11);
        }
    }

    #[test]
    fn short_codes_have_twelve_digits_this_century(
        days in 0i64..(365 * 70),
        seed in any::<u64>(),
    ) {
        // 2024 through 2093, the snowflake's range.
        let day = epoch() + Duration::days(days);
        let mut rng = StdRng::seed_from_u64(seed);
        let code = ShortCode::generate(day, &mut rng).to_string();
        prop_assert_eq!(code.len(), 12);
        prop_assert!(code.starts_with(&day.format("%y%m%d").to_string()));
    }
}

/// A leased generator whose lease holds for an hour after `clock`'s reading.
fn leased(
    worker: u32,
    clock: &Arc<FixedClock>,
    floor: DateTime<Utc>,
) -> (Snowflake, Arc<Validity>) {
    let validity = Arc::new(Validity::new(
        (clock.now() + Duration::hours(1)).timestamp_millis(),
    ));
    let ids = Snowflake::leased(
        worker,
        clock.clone(),
        floor.timestamp_millis(),
        validity.clone(),
    )
    .expect("leased");
    (ids, validity)
}

fn unix_ms(id: i64) -> i64 {
    EPOCH_MILLIS + SnowflakeParts::decode(id).expect("id").millis as i64
}

#[test]
fn a_new_holder_issues_above_the_previous_holders_high_water_after_the_clock_stepped_back() {
    let clock = clock();
    // The previous holder of worker 5 issued ids until 10 minutes from now; then the clock
    // was stepped back and the instance restarted.
    let previous = Snowflake::new(5, clock.clone()).expect("worker");
    clock.advance(Duration::minutes(10));
    let before: Vec<i64> = (0..5_000)
        .map(|_| previous.next_id().expect("id"))
        .collect();
    let high_water = previous.high_water_unix_ms();
    clock.advance(Duration::minutes(-10));
    let (ids, _) = leased(
        5,
        &clock,
        DateTime::from_timestamp_millis(high_water).expect("ms"),
    );
    let after: Vec<i64> = (0..5_000).map(|_| ids.next_id().expect("id")).collect();
    let seen: HashSet<i64> = before.iter().copied().collect();
    assert!(
        after.iter().all(|id| !seen.contains(id)),
        "no id issued twice"
    );
    assert!(after.iter().all(|id| unix_ms(*id) > high_water));
    assert!(after.windows(2).all(|w| w[0] < w[1]), "still increasing");
}

#[test]
fn a_leased_generator_borrows_ahead_when_its_clock_goes_back() {
    let clock = clock();
    let (ids, _) = leased(3, &clock, clock.now() - Duration::hours(1));
    let first = ids.next_id().expect("id");
    clock.advance(Duration::seconds(-30));
    let second = ids.next_id().expect("a leased generator does not refuse");
    assert!(second > first);
}

#[test]
fn no_ids_without_a_valid_lease() {
    let clock = clock();
    let (ids, validity) = leased(3, &clock, clock.now());
    assert!(ids.next_id().is_ok());
    validity.set(clock.now().timestamp_millis() - 1);
    assert_eq!(ids.next_id(), Err(IdGenError::NoWorkerLease));
    validity.set(clock.now().timestamp_millis() + 1_000);
    assert!(ids.next_id().is_ok(), "ids again once the lease is renewed");
}

#[test]
fn rebasing_on_another_worker_keeps_ids_increasing_and_above_its_floor() {
    let clock = clock();
    let (ids, _) = leased(3, &clock, clock.now());
    let last = ids.next_id().expect("id");
    let floor = clock.now() + Duration::seconds(5);
    ids.rebase(9, floor.timestamp_millis()).expect("rebase");
    let next = ids.next_id().expect("id");
    assert!(next > last);
    let parts = SnowflakeParts::decode(next).expect("parts");
    assert_eq!(parts.worker, 9);
    assert!(unix_ms(next) > floor.timestamp_millis());
    assert_eq!(ids.worker_id(), 9);
    assert!(ids.rebase(1024, 0).is_err());
}

proptest! {
    #[test]
    fn leased_ids_always_lie_above_the_floor(
        floor_offset_ms in -3_600_000i64..3_600_000,
        steps in proptest::collection::vec(-2_000i64..2_000, 1..50),
    ) {
        let clock = clock();
        let floor = clock.now() + Duration::milliseconds(floor_offset_ms);
        let (ids, _) = leased(7, &clock, floor);
        let mut last = 0;
        for step in steps {
            clock.advance(Duration::milliseconds(step));
            let id = ids.next_id().expect("id");
            prop_assert!(id > last);
            prop_assert!(unix_ms(id) > floor.timestamp_millis());
            last = id;
        }
    }
}
