//! A new award kind added through the public API only, as a plug-in developer would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::executor::block_on;
use lottery_award::{
    Award, AwardDistributor, AwardError, AwardKind, AwardRegistry, Delivery, DistributeError,
    Grant, RegistryError, ShippingAddress,
};
use lottery_domain::{AwardId, OrderId, UserId};

#[derive(Default)]
struct Points {
    ledger: Mutex<HashMap<(String, i64), u64>>,
}

impl Points {
    const KIND: AwardKind = AwardKind::from_static("points");

    fn balance(&self, user: &str) -> u64 {
        self.ledger
            .lock()
            .expect("ledger")
            .iter()
            .filter(|((u, _), _)| u == user)
            .map(|(_, p)| p)
            .sum()
    }
}

#[async_trait::async_trait]
impl AwardDistributor for Points {
    fn kind(&self) -> AwardKind {
        Self::KIND
    }

    fn validate(&self, award: &Award) -> Result<(), AwardError> {
        award
            .content
            .parse::<u64>()
            .map(|_| ())
            .map_err(|_| AwardError::BadContent {
                kind: Self::KIND,
                reason: "points must be a number".into(),
            })
    }

    async fn distribute(&self, grant: &Grant) -> Result<Delivery, DistributeError> {
        let points: u64 = grant
            .award
            .content
            .parse()
            .map_err(|_| DistributeError::Permanent("bad points".into()))?;
        self.ledger
            .lock()
            .map_err(|_| DistributeError::Retryable("ledger".into()))?
            .entry((grant.user_id.to_string(), grant.order_id.get()))
            .or_insert(points);
        Ok(Delivery {
            detail: format!("{points} points"),
        })
    }
}

fn grant(order: i64, award: Award) -> Grant {
    Grant {
        order_id: OrderId::new(order).expect("id"),
        user_id: UserId::new("u1").expect("user"),
        award,
        shipping: None,
    }
}

#[test]
fn a_points_kind_plugs_in_through_the_registry() {
    let points = Arc::new(Points::default());
    let mut registry = AwardRegistry::with_builtins();
    registry.register(points.clone()).expect("new kind");
    assert_eq!(
        registry.register(Arc::new(Points::default())),
        Err(RegistryError::AlreadyRegistered(Points::KIND))
    );
    let kinds: Vec<&str> = registry.kinds().map(AwardKind::as_str).collect();
    assert_eq!(
        kinds,
        ["coupon", "description", "physical", "points", "redeem_code"]
    );

    let kind: AwardKind = "points".parse().expect("kind");
    let award = Award::new(
        AwardId::new(1).expect("id"),
        kind.clone(),
        "100 points",
        "100",
    )
    .expect("award");
    registry.validate(&award).expect("valid");
    let bad = Award::new(AwardId::new(2).expect("id"), kind, "points", "x").expect("award");
    assert!(matches!(
        registry.validate(&bad),
        Err(AwardError::BadContent { .. })
    ));

    // Delivered twice for one order (a redelivery): credited once.
    for _ in 0..2 {
        let d = block_on(registry.distribute(&grant(9, award.clone()))).expect("delivered");
        assert_eq!(d.detail, "100 points");
    }
    block_on(registry.distribute(&grant(10, award))).expect("delivered");
    assert_eq!(points.balance("u1"), 200);
}

#[test]
fn unknown_kinds_are_refused_and_fail_permanently() {
    let registry = AwardRegistry::with_builtins();
    let award = Award::new(
        AwardId::new(1).expect("id"),
        "points".parse().expect("kind"),
        "p",
        "1",
    )
    .expect("award");
    assert!(matches!(
        registry.validate(&award),
        Err(AwardError::UnknownKind(_))
    ));
    assert!(matches!(
        block_on(registry.distribute(&grant(1, award))),
        Err(DistributeError::Permanent(_))
    ));
}

#[test]
fn builtins_deliver_their_kinds() {
    let registry = AwardRegistry::with_builtins();
    let mk = |kind: AwardKind, content: &str| {
        Award::new(AwardId::new(3).expect("id"), kind, "prize", content).expect("award")
    };

    let d =
        block_on(registry.distribute(&grant(5, mk(AwardKind::DESCRIPTION, "A thank-you note"))));
    assert_eq!(d.map(|d| d.detail), Ok("A thank-you note".to_owned()));

    let code =
        block_on(registry.distribute(&grant(5, mk(AwardKind::REDEEM_CODE, "XMAS")))).expect("code");
    let again =
        block_on(registry.distribute(&grant(5, mk(AwardKind::REDEEM_CODE, "XMAS")))).expect("code");
    assert_eq!(code, again, "a redelivery yields the same code");
    assert!(
        registry
            .validate(&mk(AwardKind::REDEEM_CODE, "bad prefix!"))
            .is_err()
    );

    assert!(registry.validate(&mk(AwardKind::COUPON, " ")).is_err());
    let c =
        block_on(registry.distribute(&grant(6, mk(AwardKind::COUPON, "TEN-OFF")))).expect("coupon");
    assert!(c.detail.contains("TEN-OFF"));

    let phone = mk(AwardKind::PHYSICAL, "SKU-1");
    assert!(matches!(
        block_on(registry.distribute(&grant(7, phone.clone()))),
        Err(DistributeError::Permanent(_))
    ));
    let mut g = grant(7, phone);
    g.shipping = Some(ShippingAddress {
        recipient: "Ada".into(),
        phone: "123".into(),
        line1: "1 Main St".into(),
        line2: None,
        city: "Springfield".into(),
        region: None,
        postal_code: None,
        country: "US".into(),
    });
    let s = block_on(registry.distribute(&g)).expect("shipped");
    assert!(s.detail.contains("Springfield"));
}

/// A plug-in kind that ships goods, so it opts in to waiting for an address.
struct Hamper;

#[async_trait::async_trait]
impl AwardDistributor for Hamper {
    fn kind(&self) -> AwardKind {
        AwardKind::from_static("hamper")
    }

    fn needs_address(&self) -> bool {
        true
    }

    async fn distribute(&self, grant: &Grant) -> Result<Delivery, DistributeError> {
        let to = grant
            .shipping
            .as_ref()
            .ok_or_else(|| DistributeError::Permanent("no address".into()))?;
        Ok(Delivery {
            detail: format!("hamper to {}", to.city),
        })
    }
}

#[test]
fn kinds_say_whether_they_wait_for_an_address() {
    let registry = AwardRegistry::with_builtins()
        .with(Arc::new(Hamper))
        .expect("new kind")
        .with(Arc::new(Points::default()))
        .expect("new kind");
    assert!(registry.needs_address(&AwardKind::PHYSICAL));
    assert!(registry.needs_address(&AwardKind::from_static("hamper")));
    // The default: a plug-in that does not say so is delivered at once.
    assert!(!registry.needs_address(&Points::KIND));
    for kind in [
        AwardKind::DESCRIPTION,
        AwardKind::REDEEM_CODE,
        AwardKind::COUPON,
    ] {
        assert!(!registry.needs_address(&kind), "{kind}");
    }
    assert!(!registry.needs_address(&AwardKind::from_static("unknown")));
}
