//! Dry-run simulation: matches the configured rates and touches no stock.

mod common;

use common::{Mode, award, command, running, world};
use lottery_award::AwardKind;
use lottery_strategy::DrawMode;
use statrs::distribution::{ChiSquared, ContinuousCDF};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_dry_runs_match_the_rates_and_take_no_stock() {
    let w = world(Mode::Embedded).await;
    let rates = ["0.0005", "0.01", "0.2", "0.35"];
    let awards = rates
        .iter()
        .enumerate()
        .map(|(i, r)| award(AwardKind::COUPON, &format!("a{i}"), 5, r))
        .collect();
    let d = running(&w.lottery, command(100, 1, DrawMode::Single, awards)).await;
    // Load the stock store so "no change" is observable.
    w.lottery
        .drawing()
        .draw(lottery_app::DrawRequest {
            user: lottery_domain::UserId::new("loader").expect("user"),
            activity: d.activity_id,
            idempotency_key: None,
            shipping: None,
        })
        .await
        .expect("one real draw");
    let stock_before = w.stock.stock_left(d.activity_id).await.expect("stock");
    let awards_before = w
        .stock
        .awards_left(d.activity_id, &d.award_ids)
        .await
        .expect("awards");

    let strategy = w
        .lottery
        .administration()
        .strategy(d.strategy_id)
        .await
        .expect("strategy");
    let sim = w
        .lottery
        .administration()
        .simulate(strategy, 1_000_000)
        .await
        .expect("simulate");
    assert_eq!(sim.draws, 1_000_000);
    let mut stat = 0.0;
    let mut expected_nothing = 1.0;
    for (row, rate) in sim.awards.iter().zip(rates) {
        let p: f64 = rate.parse().expect("rate");
        expected_nothing -= p;
        let e = p * 1e6;
        stat += (row.wins as f64 - e).powi(2) / e;
    }
    let e = expected_nothing * 1e6;
    stat += (sim.nothing as f64 - e).powi(2) / e;
    let p_value = ChiSquared::new(4.0).expect("df").sf(stat);
    assert!(p_value > 1e-6, "chi-square p = {p_value}, {sim:?}");

    assert_eq!(
        w.stock.stock_left(d.activity_id).await.expect("stock"),
        stock_before
    );
    assert_eq!(
        w.stock
            .awards_left(d.activity_id, &d.award_ids)
            .await
            .expect("awards"),
        awards_before
    );
    assert!(
        w.lottery
            .administration()
            .simulate(
                w.lottery
                    .administration()
                    .strategy(d.strategy_id)
                    .await
                    .expect("s"),
                0
            )
            .await
            .is_err()
    );
}
