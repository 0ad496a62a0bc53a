use std::sync::Arc;

use lottery_domain::{ActivityId, AwardId, Clock, OrderId, StrategyId, TakeId, TreeId};

use crate::{IdGenError, RandomNumber11, ShortCode, Snowflake, Validity};

/// Where the application gets new ids. Take, order, award and tree ids are time-ordered and
/// can fail (see [`IdGenError`]); activity and strategy ids are random codes that always
/// succeed but may collide, which storage catches with a unique key.
pub trait IdSource: Send + Sync {
    fn take_id(&self) -> Result<TakeId, IdGenError>;
    fn order_id(&self) -> Result<OrderId, IdGenError>;
    fn award_id(&self) -> Result<AwardId, IdGenError>;
    fn tree_id(&self) -> Result<TreeId, IdGenError>;
    fn activity_id(&self) -> ActivityId;
    fn strategy_id(&self) -> StrategyId;
}

/// The default [`IdSource`]: one snowflake for take, order, award and tree ids (so they are
/// unique across kinds too), a [`ShortCode`] for activities and a [`RandomNumber11`] for
/// strategies.
#[derive(Debug)]
pub struct Generators {
    snowflake: Snowflake,
    short_code: ShortCode,
    number11: RandomNumber11,
}

impl Generators {
    /// Random parts seeded from the operating system.
    pub fn new(worker_id: u32, clock: Arc<dyn Clock>) -> Result<Self, IdGenError> {
        Ok(Self {
            snowflake: Snowflake::new(worker_id, clock.clone())?,
            short_code: ShortCode::new(clock),
            number11: RandomNumber11::new(),
        })
    }

    /// Deterministic random parts, for tests and simulations.
    pub fn with_seed(worker_id: u32, clock: Arc<dyn Clock>, seed: u64) -> Result<Self, IdGenError> {
        Ok(Self {
            snowflake: Snowflake::new(worker_id, clock.clone())?,
            short_code: ShortCode::with_seed(clock, seed),
            // A different stream, so the two random parts are not correlated.
            number11: RandomNumber11::with_seed(seed ^ 0x9E37_79B9_7F4A_7C15),
        })
    }

    /// Generators on a leased worker id: see [`Snowflake::leased`].
    pub fn leased(
        worker_id: u32,
        clock: Arc<dyn Clock>,
        floor_unix_ms: i64,
        validity: Arc<Validity>,
    ) -> Result<Self, IdGenError> {
        Ok(Self {
            snowflake: Snowflake::leased(worker_id, clock.clone(), floor_unix_ms, validity)?,
            short_code: ShortCode::new(clock),
            number11: RandomNumber11::new(),
        })
    }

    pub fn snowflake(&self) -> &Snowflake {
        &self.snowflake
    }
}

impl IdSource for Generators {
    fn take_id(&self) -> Result<TakeId, IdGenError> {
        Ok(TakeId::new(self.snowflake.next_id()?)?)
    }

    fn order_id(&self) -> Result<OrderId, IdGenError> {
        Ok(OrderId::new(self.snowflake.next_id()?)?)
    }

    fn award_id(&self) -> Result<AwardId, IdGenError> {
        Ok(AwardId::new(self.snowflake.next_id()?)?)
    }

    fn tree_id(&self) -> Result<TreeId, IdGenError> {
        Ok(TreeId::new(self.snowflake.next_id()?)?)
    }

    fn activity_id(&self) -> ActivityId {
        // Codes are at least 101_000_000 (YYMMDD has a month and a day), never below 1.
        let code = self.short_code.next_code();
        ActivityId::new(code).unwrap_or_else(|_| unreachable!("short codes are positive"))
    }

    fn strategy_id(&self) -> StrategyId {
        let number = self.number11.next_number();
        StrategyId::new(number).unwrap_or_else(|_| unreachable!("11-digit numbers are positive"))
    }
}
