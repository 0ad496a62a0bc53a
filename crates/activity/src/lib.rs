//! The activity (a prize-draw campaign): its review state machine, the participation rules,
//! the records a draw leaves (takes and win orders), and the ports that store them.

mod deployment;
mod event;
mod model;
mod port;
mod records;
mod state;

pub use deployment::{Deployment, DeploymentError};
pub use event::{
    AwardInvoice, EventPublisher, Handled, Inbound, MessageHandler, OutboxMessage, PublishError,
    Topic,
};
pub use model::{Activity, ActivityError, ActivitySpec, ParticipationError};
pub use port::{
    ActivityFilter, ActivityRepository, ChangeFeed, ClaimFate, ClaimOutcome, ClaimRef, Deploy,
    DrawRate, DrawRateLimit, DrawRecord, DrawRepository, GiveAddress, GrantRepository, JobLeases,
    Missing, OrderFilter, OrderRepository, OutboxBacklog, OutboxRepository, Page, PastDraw,
    PendingClaim, PendingMessage, RateDecision, RateLimitError, RecordOutcome, Repositories,
    Revise, StockClaim, StockCounts, StockError, StockLedger, StockSnapshot, TakeOutcome,
    TakeRepository, TakenId,
};
pub use records::{TakeState, UserTake, WinOrder};
pub use state::{Action, ActivityState, TransitionError, UnknownName};
