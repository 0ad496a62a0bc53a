//! A deployment's parts must fit together and every award must be deliverable.

use chrono::{TimeZone, Utc};
use lottery_activity::{Activity, ActivitySpec, Deployment, DeploymentError};
use lottery_award::{Award, AwardKind, AwardRegistry};
use lottery_domain::{ActivityId, AwardId, StrategyId};
use lottery_strategy::{DrawMode, Strategy, StrategyAward};

fn activity(strategy: i64) -> Activity {
    let spec = ActivitySpec {
        name: "Spring".into(),
        description: String::new(),
        begin: Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .single()
            .expect("time"),
        end: Utc
            .with_ymd_and_hms(2026, 3, 31, 0, 0, 0)
            .single()
            .expect("time"),
        stock: 10,
        take_limit: 1,
    };
    Activity::new(
        ActivityId::new(1).expect("id"),
        spec,
        StrategyId::new(strategy).expect("id"),
        "admin",
    )
    .expect("valid")
}

fn strategy(ids: &[i64]) -> Strategy {
    let awards = ids
        .iter()
        .map(|&id| StrategyAward {
            award_id: AwardId::new(id).expect("id"),
            rate: "0.1".parse().expect("rate"),
            count: 5,
        })
        .collect();
    Strategy::new(
        StrategyId::new(7).expect("id"),
        DrawMode::Single,
        awards,
        None,
    )
    .expect("valid")
}

fn award(id: i64, kind: AwardKind, content: &str) -> Award {
    Award::new(AwardId::new(id).expect("id"), kind, "prize", content).expect("valid")
}

#[test]
fn parts_must_fit() {
    let registry = AwardRegistry::with_builtins();
    let ok = Deployment::new(
        activity(7),
        strategy(&[1, 2]),
        vec![
            award(1, AwardKind::DESCRIPTION, "hi"),
            award(2, AwardKind::COUPON, "TEN"),
        ],
        &registry,
    );
    assert!(ok.is_ok());

    let id = |n| AwardId::new(n).expect("id");
    assert!(matches!(
        Deployment::new(
            activity(8),
            strategy(&[1]),
            vec![award(1, AwardKind::DESCRIPTION, "")],
            &registry
        ),
        Err(DeploymentError::StrategyMismatch { .. })
    ));
    assert_eq!(
        Deployment::new(
            activity(7),
            strategy(&[1, 2]),
            vec![award(1, AwardKind::DESCRIPTION, "")],
            &registry
        ),
        Err(DeploymentError::MissingAward(id(2)))
    );
    assert_eq!(
        Deployment::new(
            activity(7),
            strategy(&[1]),
            vec![
                award(1, AwardKind::DESCRIPTION, ""),
                award(3, AwardKind::DESCRIPTION, "")
            ],
            &registry
        ),
        Err(DeploymentError::UnusedAward(id(3)))
    );
    assert_eq!(
        Deployment::new(
            activity(7),
            strategy(&[1]),
            vec![
                award(1, AwardKind::DESCRIPTION, ""),
                award(1, AwardKind::DESCRIPTION, "")
            ],
            &registry
        ),
        Err(DeploymentError::DuplicateAward(id(1)))
    );
    // A coupon without a template is refused at deploy time, not at delivery.
    assert!(matches!(
        Deployment::new(
            activity(7),
            strategy(&[1]),
            vec![award(1, AwardKind::COUPON, "")],
            &registry
        ),
        Err(DeploymentError::Award { .. })
    ));
}
