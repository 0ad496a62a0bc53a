//! Admin endpoints: deploy, list, inspect, revise and review activities; rule trees;
//! strategy simulation.

use axum::extract::State;
use axum::http::StatusCode;
use lottery_activity::{Action, ActivityFilter, OrderFilter, Page};
use lottery_award::GrantState;
use lottery_domain::{OrderId, TreeId};
use lottery_rule::{Line, LineOp, Node, NodeKind, RuleTree};
use lottery_strategy::{DrawMode, Rate};

use super::dto::*;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

fn page(offset: Option<u32>, limit: Option<u32>) -> Page {
    Page::new(offset.unwrap_or(0), limit.unwrap_or(50))
}

/// Deploy an activity with its strategy and awards (state `editing`).
#[utoipa::path(post, path = "/api/v1/admin/activities", tag = "admin", request_body = DeployRequest,
    security(("bearer" = [])),
    responses((status = 201, body = DeployedResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn deploy(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<DeployRequest>,
) -> ApiResult<(StatusCode, axum::Json<DeployedResponse>)> {
    let deployed = state
        .lottery
        .administration()
        .deploy(body.into_command()?, &admin.name)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(deployed.into())))
}

/// List activities, newest first, filtered by name substring and state.
#[utoipa::path(get, path = "/api/v1/admin/activities", tag = "admin", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = ActivityList), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<axum::Json<ActivityList>> {
    let state_filter = q
        .state
        .as_deref()
        .map(|s| {
            s.parse().map_err(|e: lottery_activity::UnknownName| {
                ApiError::BadRequest(format!("state: {e}"))
            })
        })
        .transpose()?;
    let p = page(q.offset, q.limit);
    let items = state
        .lottery
        .administration()
        .list_activities(
            &ActivityFilter {
                name: q.name,
                state: state_filter,
            },
            p,
        )
        .await?;
    Ok(axum::Json(ActivityList {
        items: items.iter().map(ActivitySummary::from).collect(),
        offset: p.offset,
        limit: p.limit,
    }))
}

/// One activity with its strategy, awards, stock left, draw and win counts, and its orders
/// by delivery state: what a console shows as live statistics.
#[utoipa::path(get, path = "/api/v1/admin/activities/{id}", tag = "admin", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = ActivityDetail), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn detail(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<ActivityDetail>> {
    let id = parse_activity_id(&id)?;
    let d = state.lottery.administration().activity_detail(id).await?;
    let awards = d
        .awards
        .iter()
        .map(|a| AwardView {
            award_id: a.share.award_id.to_string(),
            kind: a
                .award
                .as_ref()
                .map(|x| x.kind.to_string())
                .unwrap_or_default(),
            name: a.award.as_ref().map(|x| x.name.clone()).unwrap_or_default(),
            content: a
                .award
                .as_ref()
                .map(|x| x.content.clone())
                .unwrap_or_default(),
            count: a.share.count,
            rate: a.share.rate.to_string(),
            left: a.left,
            won: a.won,
        })
        .collect();
    Ok(axum::Json(ActivityDetail {
        summary: ActivitySummary::from(&d.activity),
        description: d.activity.spec().description.clone(),
        stock_left: d.stock_left,
        draws: d.draws,
        wins: d.wins,
        orders: OrderCounts {
            awaiting_address: d.orders.awaiting_address,
            pending: d.orders.pending,
            granted: d.orders.granted,
            failed: d.orders.failed,
        },
        strategy: StrategyView {
            strategy_id: d.strategy.id().to_string(),
            mode: d.strategy.mode().to_string(),
            fallback_award_id: d.strategy.fallback().map(|a| a.to_string()),
            awards,
        },
    }))
}

/// Orders in one grant state across every shard, in order id order, a page at a time: e.g.
/// `state=awaiting_address` lists the shipped prizes still waiting for their winner's
/// address. Pass the answer's `next_after` as `after` for the next page.
#[utoipa::path(get, path = "/api/v1/admin/orders", tag = "admin", params(OrderQuery), security(("bearer" = [])),
    responses((status = 200, body = OrderPageView),
        (status = 400, description = "a query parameter is missing or invalid; the message names it", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub async fn orders(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> ApiResult<axum::Json<OrderPageView>> {
    let grant_state: GrantState = q
        .state
        .as_deref()
        .ok_or_else(|| {
            ApiError::BadRequest(
                "state: required; one of awaiting_address, init, complete, failed".into(),
            )
        })?
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("state: {e}")))?;
    let activity = q
        .activity_id
        .as_deref()
        .map(|raw| {
            raw.parse()
                .map_err(|e| ApiError::BadRequest(format!("activity_id: {e}")))
        })
        .transpose()?;
    let after: Option<OrderId> = q
        .after
        .as_deref()
        .map(|raw| {
            raw.parse()
                .map_err(|e| ApiError::BadRequest(format!("after: {e}")))
        })
        .transpose()?;
    // The application refuses a limit outside 1 to 200, naming it.
    let limit = q.limit.unwrap_or(50);
    let page = state
        .lottery
        .administration()
        .orders_in_state(
            OrderFilter {
                state: grant_state,
                activity,
            },
            after,
            limit,
        )
        .await?;
    Ok(axum::Json(OrderPageView {
        items: page.items.iter().map(AdminOrderView::from).collect(),
        next_after: page.next_after.map(|o| o.to_string()),
    }))
}

/// Replace an activity's content; only while it is `editing`.
#[utoipa::path(put, path = "/api/v1/admin/activities/{id}", tag = "admin", params(("id" = String, Path)),
    request_body = DeployRequest, security(("bearer" = [])),
    responses((status = 200, body = DeployedResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn revise(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<DeployRequest>,
) -> ApiResult<axum::Json<DeployedResponse>> {
    let id = parse_activity_id(&id)?;
    let deployed = state
        .lottery
        .administration()
        .revise(id, body.into_command()?, &admin.name)
        .await?;
    Ok(axum::Json(deployed.into()))
}

/// Apply a review action: submit, approve, refuse, revoke, start, close or open.
#[utoipa::path(post, path = "/api/v1/admin/activities/{id}/actions/{action}", tag = "admin",
    params(("id" = String, Path), ("action" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = StateResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn act(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath((id, action)): ApiPath<(String, String)>,
) -> ApiResult<axum::Json<StateResponse>> {
    let id = parse_activity_id(&id)?;
    let action: Action = action.parse().map_err(|e: lottery_activity::UnknownName| {
        ApiError::BadRequest(format!(
            "{e}; expected submit, approve, refuse, revoke, start, close or open"
        ))
    })?;
    let to = state.lottery.administration().act(id, action).await?;
    Ok(axum::Json(StateResponse {
        activity_id: id.to_string(),
        state: to.to_string(),
    }))
}

/// Store a decision tree that picks an activity from user facts.
#[utoipa::path(post, path = "/api/v1/admin/rule-trees", tag = "admin", request_body = TreeRequest,
    security(("bearer" = [])),
    responses((status = 201, body = TreeCreated), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn create_tree(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<TreeRequest>,
) -> ApiResult<(StatusCode, axum::Json<TreeCreated>)> {
    let id = match body.tree_id.as_deref() {
        Some(raw) => raw
            .parse::<TreeId>()
            .map_err(|e| ApiError::BadRequest(format!("tree_id: {e}")))?,
        None => state.lottery.administration().new_tree_id()?,
    };
    let mut nodes = Vec::with_capacity(body.nodes.len());
    for (i, n) in body.nodes.into_iter().enumerate() {
        nodes.push(match n.kind.as_str() {
            "stem" => Node::stem(n.id, n.rule_key.unwrap_or_default()),
            "fruit" => Node::fruit(n.id, n.value.unwrap_or_default()),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "nodes[{i}].kind: expected stem or fruit, got {other:?}"
                )));
            }
        });
    }
    let mut lines = Vec::with_capacity(body.lines.len());
    for (i, l) in body.lines.into_iter().enumerate() {
        let op: LineOp =
            l.op.parse()
                .map_err(|e| ApiError::BadRequest(format!("lines[{i}].op: {e}")))?;
        lines.push(Line::new(l.from, l.to, op, l.value));
    }
    let tree = RuleTree::new(id, body.name, body.root.into(), nodes, lines)
        .map_err(|e| ApiError::BadRequest(format!("invalid rule tree: {e}")))?;
    let id = state.lottery.administration().save_tree(tree).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TreeCreated {
            tree_id: id.to_string(),
        }),
    ))
}

/// Stored rule trees, newest first.
#[utoipa::path(get, path = "/api/v1/admin/rule-trees", tag = "admin", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = TreeList), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_trees(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<TreeList>> {
    let p = page(q.offset, q.limit);
    let trees = state.lottery.administration().trees(p).await?;
    Ok(axum::Json(TreeList {
        items: trees
            .into_iter()
            .map(|t| TreeSummaryView {
                tree_id: t.id.to_string(),
                name: t.name,
                nodes: t.nodes,
                lines: t.lines,
            })
            .collect(),
        offset: p.offset,
        limit: p.limit,
    }))
}

/// A stored rule tree.
#[utoipa::path(get, path = "/api/v1/admin/rule-trees/{id}", tag = "admin", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = TreeView), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn get_tree(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<TreeView>> {
    let id: TreeId = id
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("tree id: {e}")))?;
    let tree = state.lottery.administration().tree(id).await?;
    Ok(axum::Json(TreeView {
        tree_id: tree.id().to_string(),
        name: tree.name().to_owned(),
        root: tree.root().get(),
        nodes: tree
            .nodes()
            .iter()
            .map(|n| match &n.kind {
                NodeKind::Stem { rule_key } => NodeView {
                    id: n.id.get(),
                    kind: "stem".into(),
                    rule_key: Some(rule_key.clone()),
                    value: None,
                },
                NodeKind::Fruit { value } => NodeView {
                    id: n.id.get(),
                    kind: "fruit".into(),
                    rule_key: None,
                    value: Some(value.clone()),
                },
            })
            .collect(),
        lines: tree
            .lines()
            .iter()
            .map(|l| LineView {
                from: l.from.get(),
                to: l.to.get(),
                op: l.op.as_str().into(),
                value: l.value.clone(),
            })
            .collect(),
    }))
}

/// Dry-run draws of a strategy (a deployed activity's, or one given inline); touches no stock.
#[utoipa::path(post, path = "/api/v1/admin/strategies/simulate", tag = "admin", request_body = SimulateRequest,
    security(("bearer" = [])),
    responses((status = 200, body = SimulationView), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn simulate(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<SimulateRequest>,
) -> ApiResult<axum::Json<SimulationView>> {
    let sim = match (&body.activity_id, &body.awards) {
        (Some(id), None) => {
            state
                .lottery
                .administration()
                .simulate_activity(parse_activity_id(id)?, body.draws)
                .await?
        }
        (None, Some(awards)) => {
            let mode: DrawMode = body
                .mode
                .as_deref()
                .unwrap_or("single")
                .parse()
                .map_err(|e| ApiError::BadRequest(format!("mode: {e}")))?;
            let mut shares = Vec::with_capacity(awards.len());
            for (i, a) in awards.iter().enumerate() {
                let award_id = a
                    .award_id
                    .as_deref()
                    .map(|raw| parse_award_id(&format!("awards[{i}].award_id"), raw))
                    .transpose()?;
                let rate: Rate = a
                    .rate
                    .parse()
                    .map_err(|e| ApiError::BadRequest(format!("awards[{i}].rate: {e}")))?;
                shares.push(lottery_app::DraftShare { award_id, rate });
            }
            state
                .lottery
                .administration()
                .simulate_draft(mode, &shares, body.draws)
                .await?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give either activity_id or awards (with mode)".into(),
            ));
        }
    };
    Ok(axum::Json(SimulationView {
        draws: sim.draws,
        nothing: sim.nothing,
        awards: sim
            .awards
            .into_iter()
            .map(|r| SimulationRowView {
                award_id: r.award_id.to_string(),
                rate: r.rate,
                wins: r.wins,
                observed: r.observed,
            })
            .collect(),
    }))
}
