//! The scheduler and the stock sync reach every activity, however many are stored.

#[macro_use]
mod common;

use common::{Mode, award, command, world};
use futures::StreamExt;
use lottery_activity::{Action, ActivityState};
use lottery_app::SchedulerOptions;
use lottery_award::AwardKind;
use lottery_strategy::DrawMode;

both_modes!(
    every_approved_activity_is_started,
    each_round_run_is_timed_and_a_round_left_to_another_holder_is_not
);

async fn every_approved_activity_is_started(mode: Mode) {
    let w = world(mode).await;
    let ids: Vec<_> = futures::stream::iter(0..1_500)
        .map(|_| {
            let lottery = w.lottery.clone();
            async move {
                let cmd = command(
                    10,
                    1,
                    DrawMode::Single,
                    vec![award(AwardKind::COUPON, "c", 10, "0.5")],
                );
                let d = lottery
                    .administration()
                    .deploy(cmd, "admin")
                    .await
                    .expect("deploy");
                for action in [Action::Submit, Action::Approve] {
                    lottery
                        .administration()
                        .act(d.activity_id, action)
                        .await
                        .expect("review");
                }
                d.activity_id
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let scheduler = w.lottery.scheduler(None, SchedulerOptions::default());
    let moved = scheduler.move_activities().await.expect("move");
    assert_eq!(moved, 1_500, "every due activity is started in one round");
    for id in ids.iter().step_by(97).chain(ids.last()) {
        let view = w
            .lottery
            .administration()
            .activity(*id)
            .await
            .expect("activity");
        assert_eq!(view.state(), ActivityState::Doing, "activity {id}");
    }
    // Nothing is due any more: the next round finds nothing to do.
    assert_eq!(scheduler.move_activities().await.expect("move"), 0);
    // Read through the port, as the jobs do: every one is running now.
    let activities = w.storage.repositories().activities;
    let mut running = 0;
    let mut after = None;
    loop {
        let page = activities.running(after, 500).await.expect("running");
        running += page.len();
        match page.last() {
            Some(last) if page.len() == 500 => after = Some(last.id()),
            _ => break,
        }
    }
    assert_eq!(running, 1_500);
}

async fn each_round_run_is_timed_and_a_round_left_to_another_holder_is_not(mode: Mode) {
    use std::sync::{Arc, Mutex};

    use lottery_app::{Job, JobReport};

    let w = world(mode).await;
    let rounds = Arc::new(Mutex::new(Vec::new()));
    let seen = rounds.clone();
    let options = |holder: &str| SchedulerOptions {
        holder: holder.into(),
        ..SchedulerOptions::default()
    };
    let scheduler = w
        .lottery
        .scheduler(None, options("first"))
        .on_report(Arc::new(move |report| {
            if let JobReport::Round { job, .. } = report {
                seen.lock().expect("rounds").push(*job);
            }
        }));
    assert_eq!(
        scheduler.run_job(Job::StockSync).await.expect("sync"),
        Some(0)
    );
    // Another instance holds the lease: it runs this one, and nothing is timed here.
    let other = w.lottery.scheduler(None, options("second"));
    assert_eq!(
        other.run_job(Job::Reconcile).await.expect("reconcile"),
        Some(0)
    );
    assert_eq!(
        scheduler.run_job(Job::Reconcile).await.expect("reconcile"),
        None
    );
    assert_eq!(*rounds.lock().expect("rounds"), vec![Job::StockSync]);
}
