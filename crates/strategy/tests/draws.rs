//! Statistical and exact checks of the draw algorithms.

use lottery_domain::{AwardId, StrategyId};
use lottery_strategy::{Draw, DrawMode, Drawer, OutOfStock, Rate, Strategy, StrategyAward};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use rand::SeedableRng;
use rand::rngs::StdRng;
use statrs::distribution::{ChiSquared, ContinuousCDF};

const DRAWS: usize = 200_000;
/// With fixed seeds the tests are deterministic; the level only decides how far a real
/// distribution error must be before it is caught.
const ALPHA: f64 = 1e-4;

fn award_id(i: usize) -> AwardId {
    AwardId::new(i as i64 + 1).expect("positive")
}

fn strategy(mode: DrawMode, rates_e4: &[u64]) -> Strategy {
    let awards = rates_e4
        .iter()
        .enumerate()
        .map(|(i, &r)| StrategyAward {
            award_id: award_id(i),
            rate: Rate::from_units(r * 10_000).expect("rate"),
            count: 100,
        })
        .collect();
    Strategy::new(StrategyId::new(1).expect("id"), mode, awards, None).expect("valid strategy")
}

/// The probability the reference gives each award (and, last, a miss), from the rates alone.
fn expected(mode: DrawMode, rates_e4: &[u64], out: &[bool]) -> Vec<f64> {
    let mut p: Vec<f64> = match mode {
        DrawMode::Single => rates_e4
            .iter()
            .zip(out)
            .map(|(&r, &o)| if o { 0.0 } else { r as f64 / 10_000.0 })
            .collect(),
        DrawMode::Entirety => {
            let live: u64 = rates_e4
                .iter()
                .zip(out)
                .filter(|(_, o)| !**o)
                .map(|(r, _)| r)
                .sum();
            rates_e4
                .iter()
                .zip(out)
                .map(|(&r, &o)| {
                    if o || live == 0 {
                        0.0
                    } else {
                        r as f64 / live as f64
                    }
                })
                .collect()
        }
    };
    let miss = (1.0 - p.iter().sum::<f64>()).max(0.0);
    p.push(miss);
    p
}

/// Pearson's chi-square p-value of `observed` against `probabilities` (zero cells must be empty).
fn chi_square_p(observed: &[u64], probabilities: &[f64]) -> f64 {
    let n: u64 = observed.iter().sum();
    let mut stat = 0.0;
    let mut cells = 0;
    for (&o, &p) in observed.iter().zip(probabilities) {
        if p == 0.0 {
            assert_eq!(o, 0, "drew a cell of probability 0");
            continue;
        }
        let e = p * n as f64;
        stat += (o as f64 - e).powi(2) / e;
        cells += 1;
    }
    if cells < 2 {
        return 1.0;
    }
    let dist = ChiSquared::new((cells - 1) as f64).expect("degrees of freedom");
    dist.sf(stat)
}

/// Draws `DRAWS` times and counts per award, with a final "miss" cell.
fn observe(drawer: &Drawer, out_set: OutOfStock, out: &[bool], seed: u64) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = drawer.strategy().awards().len();
    let mut counts = vec![0u64; n + 1];
    for _ in 0..DRAWS {
        match drawer.draw(&mut rng, out_set) {
            Draw::Award(id) => {
                let i = (id.get() - 1) as usize;
                assert!(!out[i], "drew out-of-stock award {id} as a win");
                counts[i] += 1;
            }
            Draw::OutOfStock(id) => {
                let i = (id.get() - 1) as usize;
                assert!(out[i], "reported in-stock award {id} as out of stock");
                assert_eq!(drawer.strategy().mode(), DrawMode::Single);
                counts[n] += 1;
            }
            Draw::Nothing => counts[n] += 1,
        }
    }
    counts
}

prop_compose! {
    /// 1..12 awards with rates in 1e-4 steps, at least 0.001 each, summing to at most 1, and a
    /// random out-of-stock subset.
    fn strategies()(raw in prop::collection::vec(10u64..4_000, 1..12), total in 2_000u64..=10_000)
        (out in prop::collection::vec(any::<bool>(), raw.len()), raw in Just(raw), total in Just(total), seed in any::<u64>())
        -> (Vec<u64>, Vec<bool>, u64)
    {
        let sum: u64 = raw.iter().sum();
        // Scale into the budget `total` (<= 1) while keeping every rate >= 0.001.
        let rates = if sum > total {
            raw.iter().map(|&r| (r * total / sum).max(10)).collect::<Vec<_>>()
        } else {
            raw
        };
        let mut rates = rates;
        while rates.iter().sum::<u64>() > 10_000 {
            let max = rates.iter().copied().enumerate().max_by_key(|&(_, r)| r).map(|(i, _)| i).unwrap_or(0);
            rates[max] -= 1;
        }
        (rates, out, seed)
    }
}

fn run_case(mode: DrawMode, rates: &[u64], out: &[bool], seed: u64) -> Result<(), TestCaseError> {
    let s = strategy(mode, rates);
    let out_set = OutOfStock::of(
        &s,
        out.iter()
            .enumerate()
            .filter(|(_, o)| **o)
            .map(|(i, _)| award_id(i)),
    );
    let drawer = Drawer::new(s);
    let observed = observe(&drawer, out_set, out, seed);
    let p = chi_square_p(&observed, &expected(mode, rates, out));
    prop_assert!(
        p > ALPHA,
        "{mode}: p = {p} for rates {rates:?}, out {out:?}, observed {observed:?}"
    );
    Ok(())
}

fn config() -> Config {
    Config {
        cases: 24,
        rng_seed: RngSeed::Fixed(0x10_77e2),
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn single_mode_matches_the_rates((rates, out, seed) in strategies()) {
        run_case(DrawMode::Single, &rates, &out, seed)?;
    }

    #[test]
    fn entirety_mode_matches_the_renormalised_rates((rates, out, seed) in strategies()) {
        run_case(DrawMode::Entirety, &rates, &out, seed)?;
    }
}

/// The test above must be able to fail: a sampler 10% off on one award (0.055 for 0.05) is caught.
#[test]
fn chi_square_catches_a_slightly_wrong_distribution() {
    let rates = [500, 1_500, 2_000, 2_500, 3_500];
    let mut skewed = rates;
    skewed[0] = 550;
    skewed[4] = 3_450;
    let drawer = Drawer::new(strategy(DrawMode::Single, &skewed));
    let out = [false; 5];
    let observed = observe(&drawer, OutOfStock::NONE, &out, 7);
    let p = chi_square_p(&observed, &expected(DrawMode::Single, &rates, &out));
    assert!(p < ALPHA, "a 10% bias went unnoticed (p = {p})");
}

/// The reference's worked example, exactly: rates 0.05, 0.15, 0.20, 0.25, 0.35 for A..E with
/// B and D out of stock.
#[test]
fn reference_worked_example_is_exact() {
    let rates = [500, 1_500, 2_000, 2_500, 3_500];
    let out_ids = [award_id(1), award_id(3)];

    let entirety = strategy(DrawMode::Entirety, &rates);
    let out = OutOfStock::of(&entirety, out_ids);
    let drawer = Drawer::new(entirety);
    let probs: Vec<(u128, u128)> = drawer
        .probabilities(out)
        .into_iter()
        .map(|(_, n, d)| (n, d))
        .collect();
    // A 0.05/0.60, B 0, C 0.20/0.60, D 0, E 0.35/0.60.
    let want = [(5u128, 60u128), (0, 1), (20, 60), (0, 1), (35, 60)];
    for ((n, d), (wn, wd)) in probs.iter().zip(want) {
        assert_eq!(n * wd, wn * d, "entirety {probs:?}");
    }

    let single = strategy(DrawMode::Single, &rates);
    let out = OutOfStock::of(&single, out_ids);
    let drawer = Drawer::new(single);
    let probs: Vec<(u128, u128)> = drawer
        .probabilities(out)
        .into_iter()
        .map(|(_, n, d)| (n, d))
        .collect();
    let want = [(5u128, 100u128), (0, 1), (20, 100), (0, 1), (35, 100)];
    for ((n, d), (wn, wd)) in probs.iter().zip(want) {
        assert_eq!(n * wd, wn * d, "single {probs:?}");
    }
    // And by sampling: B and D come back as out-of-stock misses in single mode.
    let observed = observe(&drawer, out, &[false, true, false, true, false], 11);
    let p = chi_square_p(&observed, &[0.05, 0.0, 0.20, 0.0, 0.35, 0.40]);
    assert!(p > ALPHA, "single worked example p = {p}, {observed:?}");
}

#[test]
fn a_tiny_rate_is_expressible_and_drawn() {
    // A 0.05% grand prize beside a common one.
    let s = Strategy::new(
        StrategyId::new(2).expect("id"),
        DrawMode::Single,
        vec![
            StrategyAward {
                award_id: award_id(0),
                rate: "0.0005".parse().expect("rate"),
                count: 1,
            },
            StrategyAward {
                award_id: award_id(1),
                rate: "0.5".parse().expect("rate"),
                count: 9,
            },
        ],
        None,
    )
    .expect("valid");
    let drawer = Drawer::new(s);
    let (_, n, d) = drawer.probabilities(OutOfStock::NONE)[0];
    assert_eq!(n * 10_000, 5 * d);
    let mut rng = StdRng::seed_from_u64(3);
    let grand = (0..200_000)
        .filter(|_| drawer.draw(&mut rng, OutOfStock::NONE) == Draw::Award(award_id(0)))
        .count();
    // Expected 100; a 5-sigma window.
    assert!(
        (50..=150).contains(&grand),
        "grand prize drawn {grand} times"
    );
}

#[test]
fn entirety_with_everything_out_of_stock_is_a_miss() {
    let s = strategy(DrawMode::Entirety, &[5_000, 5_000]);
    let out = OutOfStock::of(&s, [award_id(0), award_id(1)]);
    let drawer = Drawer::new(s);
    let mut rng = StdRng::seed_from_u64(1);
    assert!((0..1_000).all(|_| drawer.draw(&mut rng, out) == Draw::Nothing));
}
