//! The wire format: request and response bodies of the REST API, with their OpenAPI schemas.
//! 64-bit ids are JSON strings (JavaScript loses precision above 2^53).

use chrono::{DateTime, Utc};
use lottery_activity::{Activity, UserTake, WinOrder};
use lottery_app::{AwardSpec, DeployCommand, DrawResult, StrategySpec};
use lottery_award::{Award, AwardKind, ShippingAddress};
use lottery_domain::{ActivityId, AwardId, StrategyId};
use lottery_strategy::{DrawMode, Rate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

fn field<T, E: std::fmt::Display>(path: &str, r: Result<T, E>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::BadRequest(format!("{path}: {e}")))
}

fn opt_id<T: std::str::FromStr>(path: &str, v: &Option<String>) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    v.as_deref()
        .map(|s| field(path, s.parse::<T>()))
        .transpose()
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AwardRequest {
    /// Generated when absent.
    #[serde(default)]
    pub award_id: Option<String>,
    /// `description`, `redeem_code`, `coupon`, `physical`, or a kind a plug-in registered.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub content: String,
    /// How many of this prize exist.
    pub count: u32,
    /// Probability as a decimal string, e.g. "0.0005" (at most 8 decimal places).
    pub rate: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyRequest {
    /// `single` (per-award probability) or `entirety` (renormalised over awards in stock).
    pub mode: String,
    /// An award id listed in `awards`: given when a won award is out of stock.
    #[serde(default)]
    pub fallback_award_id: Option<String>,
    pub awards: Vec<AwardRequest>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Generated when absent.
    #[serde(default)]
    pub activity_id: Option<String>,
    #[serde(default)]
    pub strategy_id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// RFC 3339.
    pub begin_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub stock: u32,
    pub take_limit: u32,
    pub strategy: StrategyRequest,
}

impl DeployRequest {
    pub fn into_command(self) -> Result<DeployCommand, ApiError> {
        let mut awards = Vec::with_capacity(self.strategy.awards.len());
        for (i, a) in self.strategy.awards.into_iter().enumerate() {
            let at = format!("strategy.awards[{i}]");
            awards.push(AwardSpec {
                award_id: opt_id(&format!("{at}.award_id"), &a.award_id)?,
                kind: field(&format!("{at}.type"), a.kind.parse::<AwardKind>())?,
                name: a.name,
                content: a.content,
                count: a.count,
                rate: field(&format!("{at}.rate"), a.rate.parse::<Rate>())?,
            });
        }
        Ok(DeployCommand {
            activity_id: opt_id("activity_id", &self.activity_id)?,
            strategy_id: opt_id("strategy_id", &self.strategy_id)?,
            name: self.name,
            description: self.description,
            begin_time: self.begin_time,
            end_time: self.end_time,
            stock: self.stock,
            take_limit: self.take_limit,
            strategy: StrategySpec {
                mode: field("strategy.mode", self.strategy.mode.parse::<DrawMode>())?,
                fallback_award_id: opt_id(
                    "strategy.fallback_award_id",
                    &self.strategy.fallback_award_id,
                )?,
                awards,
            },
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeployedResponse {
    pub activity_id: String,
    pub strategy_id: String,
    pub award_ids: Vec<String>,
    pub state: String,
}

impl From<lottery_app::Deployed> for DeployedResponse {
    fn from(d: lottery_app::Deployed) -> Self {
        Self {
            activity_id: d.activity_id.to_string(),
            strategy_id: d.strategy_id.to_string(),
            award_ids: d.award_ids.iter().map(ToString::to_string).collect(),
            state: d.state.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivitySummary {
    pub activity_id: String,
    pub name: String,
    pub state: String,
    pub begin_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub stock: u32,
    pub take_limit: u32,
    pub strategy_id: String,
    pub creator: String,
    /// The review actions the current state allows (`POST .../actions/{action}`).
    pub actions: Vec<String>,
}

impl From<&Activity> for ActivitySummary {
    fn from(a: &Activity) -> Self {
        Self {
            activity_id: a.id().to_string(),
            name: a.name().to_owned(),
            state: a.state().to_string(),
            begin_time: a.begin(),
            end_time: a.end(),
            stock: a.stock(),
            take_limit: a.take_limit(),
            strategy_id: a.strategy_id().to_string(),
            creator: a.creator().to_owned(),
            actions: a
                .state()
                .actions()
                .into_iter()
                .map(|x| x.as_str().to_owned())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityList {
    pub items: Vec<ActivitySummary>,
    pub offset: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Substring of the name.
    pub name: Option<String>,
    /// One of editing, pending_review, approved, refused, doing, closed, open.
    pub state: Option<String>,
    pub offset: Option<u32>,
    /// At most 200; default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    pub offset: Option<u32>,
    /// At most 200; default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AwardView {
    pub award_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub content: String,
    pub count: u32,
    pub rate: String,
    /// Prizes of this award left.
    pub left: u64,
    /// Prizes of this award won so far.
    pub won: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StrategyView {
    pub strategy_id: String,
    pub mode: String,
    pub fallback_award_id: Option<String>,
    pub awards: Vec<AwardView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityDetail {
    #[serde(flatten)]
    pub summary: ActivitySummary,
    pub description: String,
    pub stock_left: u64,
    /// Takes granted so far (draws made).
    pub draws: u64,
    /// Prizes won so far.
    pub wins: u64,
    /// The activity's win orders by delivery state.
    pub orders: OrderCounts,
    pub strategy: StrategyView,
}

/// An activity's win orders by grant state.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct OrderCounts {
    /// Delivered (`complete`).
    pub granted: u64,
    /// Won and not yet delivered (`init`).
    pub pending: u64,
    /// Physical prizes won without a shipping address, waiting for the winner to give one.
    pub awaiting_address: u64,
    /// Delivery failed for good; needs an operator.
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StateResponse {
    pub activity_id: String,
    pub state: String,
}

/// A prize as players see it, with its odds disclosed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicAward {
    pub award_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// The probability of drawing this prize in one draw, as a decimal string, e.g.
    /// "0.0005" (0.05%). In `entirety` mode the rates of the prizes still in stock are
    /// scaled up to sum to 1.
    pub rate: String,
    /// How many of this prize there are in all.
    pub count: u32,
    /// How many are left.
    pub left: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicActivity {
    pub activity_id: String,
    pub name: String,
    pub description: String,
    pub state: String,
    pub begin_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub stock_left: u64,
    pub take_limit: u32,
    /// `single` (each prize has its own odds; the rest of the draws win nothing) or
    /// `entirety` (every draw wins one of the prizes in stock).
    pub mode: String,
    pub awards: Vec<PublicAward>,
}

/// Where a physical prize goes. recipient, phone, line1, city and country are required and
/// must not be blank; at most 128 characters each for recipient, city and region, 32 for
/// phone and postal_code, 256 for line1 and line2, 2 to 56 for country; no control
/// characters.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingRequest {
    pub recipient: String,
    pub phone: String,
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    pub city: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
    pub country: String,
}

impl From<ShippingRequest> for ShippingAddress {
    fn from(s: ShippingRequest) -> Self {
        Self {
            recipient: s.recipient,
            phone: s.phone,
            line1: s.line1,
            line2: s.line2,
            city: s.city,
            region: s.region,
            postal_code: s.postal_code,
            country: s.country,
        }
    }
}

/// Optional body of a draw: where a physical prize should go.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrawBody {
    #[serde(default)]
    pub shipping_address: Option<ShippingRequest>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDrawRequest {
    pub tree_id: String,
    /// The user's facts, e.g. {"gender": "man", "age": 25}; strings, numbers or booleans.
    #[schema(value_type = Object)]
    pub facts: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub shipping_address: Option<ShippingRequest>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DrawnAward {
    pub award_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub content: String,
}

impl From<&Award> for DrawnAward {
    fn from(a: &Award) -> Self {
        Self {
            award_id: a.id.to_string(),
            kind: a.kind.to_string(),
            name: a.name.clone(),
            content: a.content.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DrawResponse {
    /// `win` or `lose`.
    pub result: String,
    pub activity_id: String,
    pub take_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub award: Option<DrawnAward>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// For a win, the order's grant state. `awaiting_address`: the prize is shipped and the
    /// draw carried no `shipping_address`; nothing is delivered until the winner gives it
    /// with `PUT /api/v1/me/orders/{order_id}/shipping`. Otherwise `init` (being delivered).
    /// A replay tells the state the order is in now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_state: Option<String>,
    /// The drawn prize was out of stock and the fallback prize was given.
    pub fallback: bool,
    /// Repeats an earlier draw with the same Idempotency-Key.
    pub replayed: bool,
}

impl From<DrawResult> for DrawResponse {
    fn from(r: DrawResult) -> Self {
        Self {
            result: match r.result {
                lottery_app::DrawOutcome::Win => "win".into(),
                lottery_app::DrawOutcome::Lose => "lose".into(),
            },
            activity_id: r.activity_id.to_string(),
            take_id: r.take_id.to_string(),
            award: r.award.as_ref().map(DrawnAward::from),
            order_id: r.order_id.map(|o| o.to_string()),
            grant_state: r.grant_state.map(|s| s.to_string()),
            fallback: r.fallback,
            replayed: r.replayed,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderView {
    pub order_id: String,
    pub take_id: String,
    pub activity_id: String,
    pub award: DrawnAward,
    pub fallback: bool,
    /// `awaiting_address` (a shipped prize waiting for the winner's address: give it with
    /// `PUT /api/v1/me/orders/{order_id}/shipping`), `init` (being delivered), `complete` or
    /// `failed`.
    pub grant_state: String,
    pub delivery: Option<String>,
    pub created_at: DateTime<Utc>,
    pub granted_at: Option<DateTime<Utc>>,
}

impl From<&WinOrder> for OrderView {
    fn from(o: &WinOrder) -> Self {
        Self {
            order_id: o.order_id.to_string(),
            take_id: o.take_id.to_string(),
            activity_id: o.activity_id.to_string(),
            award: DrawnAward::from(&o.award),
            fallback: o.fallback,
            grant_state: o.grant_state.to_string(),
            delivery: o.delivery.clone(),
            created_at: o.created_at,
            granted_at: o.granted_at,
        }
    }
}

/// An order as operators see it: whose it is, too.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminOrderView {
    pub user_id: String,
    #[serde(flatten)]
    pub order: OrderView,
}

impl From<&WinOrder> for AdminOrderView {
    fn from(o: &WinOrder) -> Self {
        Self {
            user_id: o.user_id.to_string(),
            order: OrderView::from(o),
        }
    }
}

/// A page of orders in order id order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderPageView {
    pub items: Vec<AdminOrderView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Required: `awaiting_address`, `init`, `complete` or `failed`.
    pub state: Option<String>,
    /// Only this activity's orders.
    pub activity_id: Option<String>,
    /// The `next_after` of the previous page: orders with larger ids.
    pub after: Option<String>,
    /// 1 to 200; default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderList {
    pub items: Vec<OrderView>,
    pub offset: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TakeView {
    pub take_id: String,
    pub take_number: u32,
    pub taken_at: DateTime<Utc>,
    pub state: String,
}

impl From<&UserTake> for TakeView {
    fn from(t: &UserTake) -> Self {
        Self {
            take_id: t.take_id.to_string(),
            take_number: t.take_number,
            taken_at: t.taken_at,
            state: t.state.as_str().into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MyActivity {
    pub activity_id: String,
    pub take_limit: u32,
    pub takes_used: u32,
    pub takes_left: u32,
    pub takes: Vec<TakeView>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRequest {
    pub id: i64,
    /// `stem` or `fruit`.
    pub kind: String,
    /// For stems: the fact the node tests, e.g. `gender`.
    #[serde(default)]
    pub rule_key: Option<String>,
    /// For fruits: the activity id the path leads to.
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    pub from: i64,
    pub to: i64,
    /// `eq`, `gt`, `lt`, `ge`, `le` or `enum`.
    pub op: String,
    /// The limit; for `enum` a comma-separated list.
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TreeRequest {
    #[serde(default)]
    pub tree_id: Option<String>,
    pub name: String,
    pub root: i64,
    pub nodes: Vec<NodeRequest>,
    pub lines: Vec<LineRequest>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TreeCreated {
    pub tree_id: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeView {
    pub id: i64,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LineView {
    pub from: i64,
    pub to: i64,
    pub op: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TreeSummaryView {
    pub tree_id: String,
    pub name: String,
    /// Number of nodes.
    pub nodes: u32,
    /// Number of lines.
    pub lines: u32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TreeList {
    pub items: Vec<TreeSummaryView>,
    pub offset: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TreeView {
    pub tree_id: String,
    pub name: String,
    pub root: i64,
    pub nodes: Vec<NodeView>,
    pub lines: Vec<LineView>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateAward {
    #[serde(default)]
    pub award_id: Option<String>,
    pub rate: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateRequest {
    /// Simulate a deployed activity's strategy...
    #[serde(default)]
    pub activity_id: Option<String>,
    /// ...or a strategy given here.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub awards: Option<Vec<SimulateAward>>,
    /// Number of dry-run draws, 1 to 10,000,000.
    pub draws: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SimulationRowView {
    pub award_id: String,
    pub rate: String,
    pub wins: u64,
    pub observed: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SimulationView {
    pub draws: u64,
    pub nothing: u64,
    pub awards: Vec<SimulationRowView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub mode: &'static str,
    /// Dependencies this instance's role needs that cannot serve: the instance is not ready.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<String>,
    /// Dependencies that cannot serve but that this role does without (the broker, for an
    /// API instance: draws go on through the outbox).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
}

pub fn parse_activity_id(raw: &str) -> Result<ActivityId, ApiError> {
    field("activity id", raw.parse::<ActivityId>())
}

pub fn parse_award_id(path: &str, raw: &str) -> Result<AwardId, ApiError> {
    field(path, raw.parse::<AwardId>())
}

pub fn parse_strategy_id(raw: &str) -> Result<StrategyId, ApiError> {
    field("strategy id", raw.parse::<StrategyId>())
}
