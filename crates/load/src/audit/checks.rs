//! The audit's checks, evaluated over what was read (no I/O here).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::Answered;
use super::records::{Configured, Recorded};
use super::stock::Held;

/// One check's verdict, with the numbers behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
    /// A failure that may still pass once the queues drain (worth reading again).
    #[serde(skip)]
    pub settles: bool,
}

impl Check {
    fn new(name: &'static str, passed: bool, detail: String) -> Self {
        Self {
            name,
            passed,
            detail,
            settles: false,
        }
    }

    fn settling(mut self, settles: bool) -> Self {
        self.settles = settles;
        self
    }
}

/// Every check, in a stable order. Those about answers run only with `answered`.
pub fn evaluate(
    configured: &Configured,
    recorded: &Recorded,
    held: &Held,
    answered: Option<&Answered>,
) -> Vec<Check> {
    let mut checks = vec![
        takes_within_stock(configured, recorded),
        takes_within_quota(configured, recorded),
        wins_within_award_counts(configured, recorded),
        one_order_per_take(recorded),
        orders_have_their_take(recorded),
    ];
    if let Some(answered) = answered {
        checks.push(answered_wins_have_one_order(recorded, answered));
        checks.push(orders_were_answered(recorded, answered));
    }
    checks.push(orders_granted(recorded));
    checks.push(stock_store_agrees(configured, recorded, held));
    checks
}

fn takes_within_stock(c: &Configured, r: &Recorded) -> Check {
    Check::new(
        "takes_within_stock",
        r.takes <= c.stock,
        format!("{} takes recorded, stock {}", r.takes, c.stock),
    )
}

fn takes_within_quota(c: &Configured, r: &Recorded) -> Check {
    let detail = match r.over_quota.first() {
        None => format!("no user over the take limit of {}", c.take_limit),
        Some((user, n)) => format!(
            "{} users over the take limit of {}, e.g. {user:?} with {n} takes",
            r.over_quota.len(),
            c.take_limit
        ),
    };
    Check::new("takes_within_quota", r.over_quota.is_empty(), detail)
}

fn wins_by_award(r: &Recorded) -> BTreeMap<i64, u64> {
    let mut won = BTreeMap::new();
    for o in &r.orders {
        *won.entry(o.award_id).or_default() += 1;
    }
    won
}

fn wins_within_award_counts(c: &Configured, r: &Recorded) -> Check {
    let won = wins_by_award(r);
    let mut passed = true;
    let mut parts = Vec::new();
    for (award, count) in &c.awards {
        let n = won.get(award).copied().unwrap_or(0);
        passed &= n <= *count;
        parts.push(format!("award {award}: {n} won of {count}"));
    }
    for (award, n) in won
        .iter()
        .filter(|(a, _)| !c.awards.iter().any(|(x, _)| x == *a))
    {
        passed = false;
        parts.push(format!("award {award} is not the activity's, yet {n} won"));
    }
    Check::new("wins_within_award_counts", passed, parts.join("; "))
}

fn orders_by_take(r: &Recorded) -> HashMap<i64, Vec<usize>> {
    let mut by_take: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, o) in r.orders.iter().enumerate() {
        by_take.entry(o.take_id).or_default().push(i);
    }
    by_take
}

fn one_order_per_take(r: &Recorded) -> Check {
    let by_take = orders_by_take(r);
    let doubled: Vec<(&i64, usize)> = by_take
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(t, v)| (t, v.len()))
        .collect();
    let detail = match doubled.first() {
        None => format!(
            "{} orders for {} distinct takes",
            r.orders.len(),
            by_take.len()
        ),
        Some((take, n)) => format!(
            "{} takes have more than one order (a prize given twice), e.g. take {take} with {n}",
            doubled.len()
        ),
    };
    Check::new("one_order_per_take", doubled.is_empty(), detail)
}

fn orders_have_their_take(r: &Recorded) -> Check {
    let misplaced: Vec<i64> = r
        .orders
        .iter()
        .filter(|o| r.spread.route(&o.user_id) != o.table)
        .map(|o| o.order_id)
        .collect();
    let passed = r.orders_without_take.is_empty() && misplaced.is_empty();
    let detail = if passed {
        format!(
            "each of {} orders has its used take, in its user's table",
            r.orders.len()
        )
    } else {
        format!(
            "{} orders without their used take{}, {} outside their user's table{}",
            r.orders_without_take.len(),
            example("order", &r.orders_without_take),
            misplaced.len(),
            example("order", &misplaced)
        )
    };
    Check::new("orders_have_their_take", passed, detail)
}

/// ` (e.g. take 42)`, or nothing for an empty list.
fn example(what: &str, list: &[impl std::fmt::Display]) -> String {
    list.first()
        .map(|x| format!(" (e.g. {what} {x})"))
        .unwrap_or_default()
}

fn answered_wins_have_one_order(r: &Recorded, a: &Answered) -> Check {
    let by_take = orders_by_take(r);
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    for win in &a.wins {
        let found = win
            .take_id
            .parse::<i64>()
            .ok()
            .and_then(|t| by_take.get(&t))
            .map_or(&[][..], Vec::as_slice);
        match found {
            [] => missing.push(&win.take_id),
            [i] => {
                let o = &r.orders[*i];
                let same = o.order_id.to_string() == win.order_id
                    && o.user_id == win.user_id
                    && o.award_id.to_string() == win.award_id;
                if !same {
                    mismatched.push(&win.take_id);
                }
            }
            _ => mismatched.push(&win.take_id),
        }
    }
    let passed = missing.is_empty() && mismatched.is_empty();
    let detail = if passed {
        format!(
            "{} wins answered, each with exactly one matching order",
            a.wins.len()
        )
    } else {
        format!(
            "of {} wins answered, {} have no order{} and {} have more than one or one that \
             differs{}",
            a.wins.len(),
            missing.len(),
            example("take", &missing),
            mismatched.len(),
            example("take", &mismatched)
        )
    };
    Check::new("answered_wins_have_one_order", passed, detail)
}

fn orders_were_answered(r: &Recorded, a: &Answered) -> Check {
    let answered: std::collections::HashSet<&str> =
        a.wins.iter().map(|w| w.order_id.as_str()).collect();
    let unanswered = r
        .orders
        .iter()
        .filter(|o| !answered.contains(o.order_id.to_string().as_str()))
        .count() as u64;
    Check::new(
        "orders_were_answered",
        unanswered <= a.unknown_outcomes,
        format!(
            "{} orders, {unanswered} of them never answered as a win; {} draws had an unknown \
             outcome (5xx or no answer) and may account for as many",
            r.orders.len(),
            a.unknown_outcomes
        ),
    )
}

fn orders_granted(r: &Recorded) -> Check {
    let mut states: BTreeMap<&str, u64> = BTreeMap::new();
    for o in &r.orders {
        *states.entry(o.grant_state.as_str()).or_default() += 1;
    }
    let n = |s: &str| states.get(s).copied().unwrap_or(0);
    let others: u64 = states
        .iter()
        .filter(|(s, _)| !matches!(**s, "complete" | "init" | "failed" | "awaiting_address"))
        .map(|(_, n)| n)
        .sum();
    let passed = n("init") == 0 && n("failed") == 0 && others == 0;
    Check::new(
        "orders_granted",
        passed,
        format!(
            "{} granted, {} still being delivered, {} failed, {} awaiting the winner's address, \
             {others} in an unknown state",
            n("complete"),
            n("init"),
            n("failed"),
            n("awaiting_address")
        ),
    )
    .settling(n("failed") == 0 && others == 0)
}

fn stock_store_agrees(c: &Configured, r: &Recorded, held: &Held) -> Check {
    let Some(left) = held.stock_left else {
        return Check::new(
            "stock_store_agrees",
            true,
            "the stock store does not hold the activity (never loaded, or expired): nothing \
             to compare"
                .into(),
        );
    };
    let unrecorded: Vec<_> = held
        .pending
        .iter()
        .filter(|p| !r.recorded_claims.contains(&p.take_id))
        .collect();
    let took = unrecorded.iter().filter(|p| p.took).count() as i64;
    let sum = left + r.takes as i64 + took;
    let mut passed = sum == c.stock as i64;
    let mut parts = vec![format!(
        "stock left {left} + {} takes + {took} claims not yet recorded = {sum} of {}",
        r.takes, c.stock
    )];
    let won = wins_by_award(r);
    for (award, left) in held
        .awards_left
        .iter()
        .filter_map(|(a, l)| Some((a, (*l)?)))
    {
        let count = c
            .awards
            .iter()
            .find(|(a, _)| a == award)
            .map_or(0, |(_, n)| *n);
        let n = won.get(award).copied().unwrap_or(0) as i64;
        let claimed = unrecorded
            .iter()
            .filter(|p| p.award == Some(*award))
            .count() as i64;
        passed &= left + n + claimed == count as i64;
        parts.push(format!(
            "award {award}: {left} left + {n} won + {claimed} claimed = {} of {count}",
            left + n + claimed
        ));
    }
    if !held.sees_pending {
        parts.push(
            "(in-memory stock read through the admin API; pending claims cannot be seen)".into(),
        );
    }
    Check::new("stock_store_agrees", passed, parts.join("; ")).settling(true)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use db_router::Spread;

    use super::super::Win;
    use super::super::records::OrderRow;
    use super::super::stock::PendingClaim;
    use super::*;

    const AWARD: i64 = 9;

    fn configured() -> Configured {
        Configured {
            stock: 10,
            take_limit: 2,
            awards: vec![(AWARD, 3)],
        }
    }

    fn spread() -> Spread {
        Spread::new(2, 4).expect("layout")
    }

    fn order(id: i64, take: i64, user: &str, state: &str) -> OrderRow {
        OrderRow {
            order_id: id,
            take_id: take,
            user_id: user.into(),
            award_id: AWARD,
            grant_state: state.into(),
            table: spread().route(user),
        }
    }

    fn recorded(takes: u64, orders: Vec<OrderRow>) -> Recorded {
        Recorded {
            takes,
            over_quota: Vec::new(),
            orders,
            orders_without_take: Vec::new(),
            recorded_claims: HashSet::new(),
            spread: spread(),
        }
    }

    fn held(left: i64, award_left: i64) -> Held {
        Held {
            stock_left: Some(left),
            awards_left: vec![(AWARD, Some(award_left))],
            pending: Vec::new(),
            sees_pending: true,
        }
    }

    fn win(order: i64, take: i64, user: &str) -> Win {
        Win {
            user_id: user.into(),
            take_id: take.to_string(),
            order_id: order.to_string(),
            award_id: AWARD.to_string(),
        }
    }

    fn failed(checks: &[Check]) -> Vec<&'static str> {
        checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn consistent_records_pass_every_check() {
        let r = recorded(
            4,
            vec![order(1, 11, "a", "complete"), order(2, 12, "b", "complete")],
        );
        let answered = Answered {
            activity_id: "1".into(),
            wins: vec![win(1, 11, "a"), win(2, 12, "b")],
            unknown_outcomes: 0,
        };
        let checks = evaluate(&configured(), &r, &held(6, 1), Some(&answered));
        assert!(failed(&checks).is_empty(), "{checks:?}");
        assert_eq!(checks.len(), 9);
    }

    #[test]
    fn oversold_stock_and_awards_fail() {
        let orders = (0..4).map(|i| order(i, 100 + i, "a", "complete")).collect();
        let checks = evaluate(&configured(), &recorded(11, orders), &held(0, 0), None);
        assert_eq!(
            failed(&checks),
            [
                "takes_within_stock",
                "wins_within_award_counts",
                "stock_store_agrees"
            ]
        );
    }

    #[test]
    fn a_second_order_for_one_take_fails_the_order_checks() {
        let r = recorded(
            2,
            vec![order(1, 11, "a", "complete"), order(2, 11, "a", "complete")],
        );
        let answered = Answered {
            activity_id: "1".into(),
            wins: vec![win(1, 11, "a")],
            unknown_outcomes: 0,
        };
        let checks = evaluate(&configured(), &r, &held(8, 1), Some(&answered));
        assert_eq!(
            failed(&checks),
            [
                "one_order_per_take",
                "answered_wins_have_one_order",
                "orders_were_answered"
            ]
        );
    }

    #[test]
    fn undelivered_orders_settle_but_failed_ones_do_not() {
        let r = recorded(1, vec![order(1, 11, "a", "init")]);
        let checks = evaluate(&configured(), &r, &held(9, 2), None);
        let granted = checks
            .iter()
            .find(|c| c.name == "orders_granted")
            .expect("ran");
        assert!(!granted.passed && granted.settles);
        let r = recorded(1, vec![order(1, 11, "a", "failed")]);
        let checks = evaluate(&configured(), &r, &held(9, 2), None);
        let granted = checks
            .iter()
            .find(|c| c.name == "orders_granted")
            .expect("ran");
        assert!(!granted.passed && !granted.settles);
    }

    #[test]
    fn claims_not_yet_recorded_are_counted_with_the_store() {
        let mut h = held(7, 2);
        h.pending = vec![
            PendingClaim {
                take_id: 50,
                user_id: "a".into(),
                took: true,
                award: None,
            },
            PendingClaim {
                take_id: 51,
                user_id: "b".into(),
                took: true,
                award: Some(AWARD),
            },
        ];
        let mut r = recorded(2, vec![order(1, 51, "b", "complete")]);
        r.recorded_claims.insert(51);
        // 7 left + 2 takes + 1 claim (take 50) not recorded = 10.
        let checks = evaluate(&configured(), &r, &h, None);
        assert!(failed(&checks).is_empty(), "{checks:?}");
    }
}
