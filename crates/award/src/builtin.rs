//! The four built-in award kinds. Each is idempotent per order: a redelivery produces the
//! same delivery again.

use crate::{Award, AwardDistributor, AwardError, AwardKind, Delivery, DistributeError, Grant};

/// A text prize ("thanks for taking part", "you won a mention"): delivered by showing it.
#[derive(Debug, Clone, Copy, Default)]
pub struct DescriptionDistributor;

#[async_trait::async_trait]
impl AwardDistributor for DescriptionDistributor {
    fn kind(&self) -> AwardKind {
        AwardKind::DESCRIPTION
    }

    async fn distribute(&self, grant: &Grant) -> Result<Delivery, DistributeError> {
        Ok(Delivery {
            detail: grant.award.content.clone(),
        })
    }
}

/// A redeem code: the award content is the code batch prefix; each order gets a code derived
/// from its id, so the same order always yields the same code.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedeemCodeDistributor;

impl RedeemCodeDistributor {
    /// Crockford base32 of a mixed order id: short, unambiguous when read aloud.
    fn code_for(batch: &str, order: i64) -> String {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        // SplitMix64 finaliser: a bijection, so distinct orders keep distinct codes.
        let mut x = order as u64;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        let mut code = String::with_capacity(13);
        for _ in 0..13 {
            code.push(ALPHABET[(x & 31) as usize] as char);
            x >>= 5;
        }
        if batch.is_empty() {
            code
        } else {
            format!("{batch}-{code}")
        }
    }
}

#[async_trait::async_trait]
impl AwardDistributor for RedeemCodeDistributor {
    fn kind(&self) -> AwardKind {
        AwardKind::REDEEM_CODE
    }

    fn validate(&self, award: &Award) -> Result<(), AwardError> {
        if award
            .content
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            Ok(())
        } else {
            Err(AwardError::BadContent {
                kind: self.kind(),
                reason: "the code batch prefix may hold only A-Z, a-z, 0-9, '-' and '_'".into(),
            })
        }
    }

    async fn distribute(&self, grant: &Grant) -> Result<Delivery, DistributeError> {
        Ok(Delivery {
            detail: Self::code_for(&grant.award.content, grant.order_id.get()),
        })
    }
}

/// A coupon: the award content names the coupon template; the coupon is issued to the user,
/// keyed by the order so a redelivery does not issue a second one.
#[derive(Debug, Clone, Copy, Default)]
pub struct CouponDistributor;

#[async_trait::async_trait]
impl AwardDistributor for CouponDistributor {
    fn kind(&self) -> AwardKind {
        AwardKind::COUPON
    }

    fn validate(&self, award: &Award) -> Result<(), AwardError> {
        if award.content.trim().is_empty() {
            return Err(AwardError::BadContent {
                kind: self.kind(),
                reason: "the content must name the coupon template".into(),
            });
        }
        Ok(())
    }

    async fn distribute(&self, grant: &Grant) -> Result<Delivery, DistributeError> {
        Ok(Delivery {
            detail: format!(
                "coupon {} issued to {} (order {})",
                grant.award.content.trim(),
                grant.user_id,
                grant.order_id
            ),
        })
    }
}

/// Physical goods: needs a shipping address; delivery is a shipment request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PhysicalDistributor;

#[async_trait::async_trait]
impl AwardDistributor for PhysicalDistributor {
    fn kind(&self) -> AwardKind {
        AwardKind::PHYSICAL
    }

    fn needs_address(&self) -> bool {
        true
    }

    async fn distribute(&self, grant: &Grant) -> Result<Delivery, DistributeError> {
        // A win without an address waits for it and is never sent here; an invoice without
        // one (written before addresses could be given later) cannot be shipped.
        let Some(to) = &grant.shipping else {
            return Err(DistributeError::Permanent(
                "physical goods need a shipping address".into(),
            ));
        };
        // The same rules the address passed when it was given; checked again because an
        // invoice may come from an older writer.
        to.validate()
            .map_err(|e| DistributeError::Permanent(e.to_string()))?;
        Ok(Delivery {
            detail: format!(
                "shipment of {} to {}, {}, {} {} (order {})",
                grant.award.name, to.recipient, to.line1, to.city, to.country, grant.order_id
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redeem_codes_are_stable_and_distinct() {
        let a = RedeemCodeDistributor::code_for("SPRING", 1);
        assert_eq!(a, RedeemCodeDistributor::code_for("SPRING", 1));
        assert_ne!(a, RedeemCodeDistributor::code_for("SPRING", 2));
        assert!(a.starts_with("SPRING-"));
        assert_eq!(a.len(), "SPRING-".len() + 13);
    }

    fn physical(shipping: Option<crate::ShippingAddress>) -> Grant {
        Grant {
            order_id: lottery_domain::OrderId::new(9).expect("id"),
            user_id: lottery_domain::UserId::new("alice").expect("user"),
            award: Award::new(
                lottery_domain::AwardId::new(1).expect("id"),
                AwardKind::PHYSICAL,
                "Phone",
                "SKU-1",
            )
            .expect("award"),
            shipping,
        }
    }

    #[test]
    fn physical_goods_need_a_valid_address() {
        use futures::executor::block_on;
        assert!(PhysicalDistributor.needs_address());
        assert!(!CouponDistributor.needs_address());
        assert!(matches!(
            block_on(PhysicalDistributor.distribute(&physical(None))),
            Err(DistributeError::Permanent(_))
        ));
        let mut to = crate::ShippingAddress {
            recipient: "Alice".into(),
            phone: "1".into(),
            line1: "1 Main St".into(),
            line2: None,
            city: "Springfield".into(),
            region: None,
            postal_code: None,
            country: "US".into(),
        };
        let shipped =
            block_on(PhysicalDistributor.distribute(&physical(Some(to.clone())))).expect("shipped");
        assert!(shipped.detail.contains("Alice, 1 Main St, Springfield US"));
        // A phone number the address check refuses is refused here in the same words.
        to.phone = " ".into();
        let expected = to.validate().expect_err("blank phone").to_string();
        assert_eq!(
            block_on(PhysicalDistributor.distribute(&physical(Some(to)))),
            Err(DistributeError::Permanent(expected))
        );
    }
}
