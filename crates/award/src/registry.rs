use std::collections::BTreeMap;
use std::sync::Arc;

use crate::builtin::{
    CouponDistributor, DescriptionDistributor, PhysicalDistributor, RedeemCodeDistributor,
};
use crate::{Award, AwardDistributor, AwardError, AwardKind, Delivery, DistributeError, Grant};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("award type {0} is already registered")]
    AlreadyRegistered(AwardKind),
}

/// Maps each award kind to its distributor.
#[derive(Clone, Default)]
pub struct AwardRegistry {
    distributors: BTreeMap<AwardKind, Arc<dyn AwardDistributor>>,
}

impl std::fmt::Debug for AwardRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwardRegistry")
            .field("kinds", &self.distributors.keys())
            .finish()
    }
}

impl AwardRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with the four built-in kinds: description, redeem code, coupon, physical.
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        let builtins: [Arc<dyn AwardDistributor>; 4] = [
            Arc::new(DescriptionDistributor),
            Arc::new(RedeemCodeDistributor),
            Arc::new(CouponDistributor),
            Arc::new(PhysicalDistributor),
        ];
        for d in builtins {
            // Distinct kinds by construction.
            registry.distributors.insert(d.kind(), d);
        }
        registry
    }

    /// Adds a distributor; refuses a second one for the same kind, since silently replacing a
    /// built-in would change how existing prizes are delivered.
    pub fn register(
        &mut self,
        distributor: Arc<dyn AwardDistributor>,
    ) -> Result<(), RegistryError> {
        let kind = distributor.kind();
        if self.distributors.contains_key(&kind) {
            return Err(RegistryError::AlreadyRegistered(kind));
        }
        self.distributors.insert(kind, distributor);
        Ok(())
    }

    /// Builder-style [`Self::register`].
    pub fn with(mut self, distributor: Arc<dyn AwardDistributor>) -> Result<Self, RegistryError> {
        self.register(distributor)?;
        Ok(self)
    }

    pub fn get(&self, kind: &AwardKind) -> Option<&Arc<dyn AwardDistributor>> {
        self.distributors.get(kind)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &AwardKind> {
        self.distributors.keys()
    }

    /// Checks that the award's kind is known and that its distributor accepts it.
    pub fn validate(&self, award: &Award) -> Result<(), AwardError> {
        self.get(&award.kind)
            .ok_or_else(|| AwardError::UnknownKind(award.kind.clone()))?
            .validate(award)
    }

    /// Whether awards of this kind wait for a shipping address before they are delivered;
    /// false for a kind nobody registered (its delivery fails anyway).
    pub fn needs_address(&self, kind: &AwardKind) -> bool {
        self.get(kind).is_some_and(|d| d.needs_address())
    }

    /// Delivers a grant through its kind's distributor. An unknown kind cannot be fixed by
    /// retrying, so it is a permanent failure.
    pub async fn distribute(&self, grant: &Grant) -> Result<Delivery, DistributeError> {
        match self.get(&grant.award.kind) {
            Some(d) => d.distribute(grant).await,
            None => Err(DistributeError::Permanent(format!(
                "no distributor for award type {}",
                grant.award.kind
            ))),
        }
    }
}
