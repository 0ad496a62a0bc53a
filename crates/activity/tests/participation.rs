//! The participation rules and the aggregate's invariants, with an injected clock.

use chrono::{DateTime, Duration, TimeZone, Utc};
use lottery_activity::{
    Action, Activity, ActivityError, ActivitySpec, ActivityState, ParticipationError,
};
use lottery_domain::{ActivityId, Clock, FixedClock, StrategyId};

fn t(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, h, 0, 0)
        .single()
        .expect("valid time")
}

fn spec() -> ActivitySpec {
    ActivitySpec {
        name: "Black Friday".into(),
        description: "Win a phone".into(),
        begin: t(10),
        end: t(20),
        stock: 100,
        take_limit: 3,
    }
}

fn doing() -> Activity {
    let mut a = Activity::new(
        ActivityId::new(100_001).expect("id"),
        spec(),
        StrategyId::new(1).expect("id"),
        "admin",
    )
    .expect("valid");
    for action in [Action::Submit, Action::Approve, Action::Start] {
        a.apply(action).expect("allowed");
    }
    a
}

#[test]
fn a_doing_activity_in_its_window_with_stock_and_takes_admits() {
    let clock = FixedClock::new(t(12));
    assert_eq!(doing().check_participation(clock.now(), 5, 2), Ok(()));
    // The window is inclusive at both ends.
    assert_eq!(doing().check_participation(t(10), 1, 0), Ok(()));
    assert_eq!(doing().check_participation(t(20), 1, 0), Ok(()));
}

#[test]
fn each_rule_has_its_own_error() {
    let a = doing();
    assert_eq!(
        a.check_participation(t(9), 5, 0),
        Err(ParticipationError::NotStarted { begins_at: t(10) })
    );
    assert_eq!(
        a.check_participation(t(20) + Duration::seconds(1), 5, 0),
        Err(ParticipationError::Ended { ended_at: t(20) })
    );
    assert_eq!(
        a.check_participation(t(12), 0, 0),
        Err(ParticipationError::SoldOut)
    );
    assert_eq!(
        a.check_participation(t(12), 5, 3),
        Err(ParticipationError::QuotaExhausted { limit: 3 })
    );

    for state_path in [
        &[][..],
        &[Action::Submit],
        &[Action::Submit, Action::Approve],
        &[Action::Close],
    ] {
        let mut b = Activity::new(
            ActivityId::new(2).expect("id"),
            spec(),
            StrategyId::new(1).expect("id"),
            "admin",
        )
        .expect("valid");
        for &action in state_path {
            b.apply(action).expect("allowed");
        }
        assert_eq!(
            b.check_participation(t(12), 5, 0),
            Err(ParticipationError::NotOpen { state: b.state() }),
            "{}",
            b.state()
        );
    }
}

#[test]
fn invalid_specs_are_refused_with_the_reason() {
    let mk = |f: fn(&mut ActivitySpec)| {
        let mut s = spec();
        f(&mut s);
        Activity::new(
            ActivityId::new(1).expect("id"),
            s,
            StrategyId::new(1).expect("id"),
            "admin",
        )
    };
    assert!(matches!(
        mk(|s| s.name = " ".into()),
        Err(ActivityError::BadName { .. })
    ));
    assert!(matches!(
        mk(|s| s.end = s.begin),
        Err(ActivityError::EndNotAfterBegin { .. })
    ));
    assert!(matches!(mk(|s| s.stock = 0), Err(ActivityError::NoStock)));
    assert!(matches!(
        mk(|s| s.take_limit = 0),
        Err(ActivityError::NoTakes)
    ));
    assert!(matches!(
        mk(|s| s.description = "x".repeat(5000)),
        Err(ActivityError::DescriptionTooLong { .. })
    ));
}

#[test]
fn only_editing_activities_can_be_revised() {
    let mut a = Activity::new(
        ActivityId::new(1).expect("id"),
        spec(),
        StrategyId::new(1).expect("id"),
        "admin",
    )
    .expect("valid");
    let mut changed = spec();
    changed.stock = 50;
    a.revise(changed.clone()).expect("editing");
    assert_eq!(a.stock(), 50);
    a.apply(Action::Submit).expect("submit");
    assert_eq!(
        a.revise(changed),
        Err(ActivityError::NotEditable {
            state: ActivityState::PendingReview
        })
    );
    assert!(matches!(
        a.apply(Action::Open),
        Err(ActivityError::Transition(_))
    ));
}

#[test]
fn the_scheduler_moves_activities_at_their_times() {
    let mut a = Activity::new(
        ActivityId::new(1).expect("id"),
        spec(),
        StrategyId::new(1).expect("id"),
        "admin",
    )
    .expect("valid");
    a.apply(Action::Submit).expect("submit");
    a.apply(Action::Approve).expect("approve");
    assert_eq!(a.due_action(t(9)), None);
    assert_eq!(a.due_action(t(10)), Some(Action::Start));
    assert_eq!(a.due_action(t(21)), Some(Action::Close));
    a.apply(Action::Start).expect("start");
    assert_eq!(a.due_action(t(15)), None);
    assert_eq!(a.due_action(t(21)), Some(Action::Close));
    a.apply(Action::Close).expect("close");
    // Closed activities are never picked up again: the scan cannot loop on them.
    assert_eq!(a.due_action(t(21)), None);
}
