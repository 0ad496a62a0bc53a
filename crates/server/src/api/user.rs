//! End-user endpoints: a user acts only as themself (the token's subject).

use axum::extract::State;
use axum::http::HeaderMap;
use lottery_activity::Page;
use lottery_app::DrawRequest;
use lottery_domain::{OrderId, TreeId};
use lottery_rule::Facts;

use super::dto::*;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::auth::User;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get(IDEMPOTENCY_HEADER)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::BadRequest("Idempotency-Key must be printable ASCII".into()))
        })
        .transpose()
}

/// A body that is or holds a shipping address. Missing, unknown and mistyped fields are
/// refused with 422 like invalid values, the message naming the field; a body that is not
/// JSON at all is a malformed request (400).
fn address_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return ApiError::BadRequest(format!("request body is not valid JSON: {inner}"));
        }
        if path == "." {
            ApiError::Unprocessable(format!("invalid request body: {inner}"))
        } else {
            ApiError::Unprocessable(format!("invalid request body: {path}: {inner}"))
        }
    })?;
    json.end()
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// An activity as users see it: window, state, and each prize with its odds, its count and
/// what is left (promotional draws must disclose their odds).
#[utoipa::path(get, path = "/api/v1/activities/{id}", tag = "user", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = PublicActivity), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn activity(
    State(state): State<AppState>,
    _user: User,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<PublicActivity>> {
    let id = parse_activity_id(&id)?;
    let lottery_app::ActivityView { config, stock } =
        state.lottery.queries().activity_view(id).await?;
    let a = &config.activity;
    let awards = config
        .strategy()
        .awards()
        .iter()
        .map(|sa| {
            let award = config.awards.get(&sa.award_id);
            PublicAward {
                award_id: sa.award_id.to_string(),
                kind: award.map(|x| x.kind.to_string()).unwrap_or_default(),
                name: award.map(|x| x.name.clone()).unwrap_or_default(),
                rate: sa.rate.to_string(),
                count: sa.count,
                left: stock
                    .awards_left
                    .iter()
                    .find(|(x, _)| *x == sa.award_id)
                    .map_or(0, |(_, n)| *n),
            }
        })
        .collect();
    Ok(axum::Json(PublicActivity {
        activity_id: a.id().to_string(),
        name: a.name().to_owned(),
        description: a.spec().description.clone(),
        state: a.state().to_string(),
        begin_time: a.begin(),
        end_time: a.end(),
        stock_left: stock.stock_left,
        take_limit: a.take_limit(),
        mode: config.strategy().mode().to_string(),
        awards,
    }))
}

/// Take part in an activity and draw. Always send an `Idempotency-Key` header: a replay
/// answers the first result and takes nothing more. A `503` with code `outcome_unknown`
/// means the draw was started and goes on to its end: replay with the same key (after
/// `Retry-After`) to learn its outcome.
///
/// A shipped prize won without a `shipping_address` is answered with `grant_state`
/// `awaiting_address`: ask the winner for the address and send it with
/// `PUT /api/v1/me/orders/{order_id}/shipping`. A `shipping_address` that is given is
/// checked before anything is drawn: a bad one is refused with `422` naming the field, and
/// nothing is taken.
#[utoipa::path(post, path = "/api/v1/activities/{id}/draw", tag = "user",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body(content = Option<DrawBody>), security(("bearer" = [])),
    responses((status = 200, body = DrawResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 410, body = crate::error::ErrorBody),
        (status = 422, description = "code `invalid_request`: the body is refused (a shipping address field missing, unknown, mistyped or invalid); the message names the field; nothing was drawn", body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn draw(
    State(state): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<DrawResponse>> {
    let activity = parse_activity_id(&id)?;
    // The body is optional: empty means no shipping address.
    let body: DrawBody = if body.iter().all(u8::is_ascii_whitespace) {
        DrawBody::default()
    } else {
        address_body(&body)?
    };
    state.rate_limit(&user).await?;
    let shipping = body.shipping_address.map(Into::into);
    let request = DrawRequest {
        user: user.id,
        activity,
        idempotency_key: idempotency_key(&headers)?,
        shipping,
    };
    let result = state
        .observe_draw(state.lottery.drawing().draw(request))
        .await?;
    Ok(axum::Json(result.into()))
}

/// Draw in the activity a rule tree picks from the user's facts. Shipping addresses as for
/// `POST /api/v1/activities/{id}/draw`.
#[utoipa::path(post, path = "/api/v1/draw", tag = "user", request_body = RuleDrawRequest,
    params(("Idempotency-Key" = Option<String>, Header)), security(("bearer" = [])),
    responses((status = 200, body = DrawResponse), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 410, body = crate::error::ErrorBody),
        (status = 422, description = "code `invalid_request`: the shipping address is refused; the message names the field; nothing was drawn", body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn draw_by_rules(
    State(state): State<AppState>,
    user: User,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RuleDrawRequest>,
) -> ApiResult<axum::Json<DrawResponse>> {
    let tree_id: TreeId = body
        .tree_id
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("tree_id: {e}")))?;
    let facts =
        Facts::from_json(&body.facts).map_err(|e| ApiError::BadRequest(format!("facts: {e}")))?;
    state.rate_limit(&user).await?;
    let key = idempotency_key(&headers)?;
    let shipping = body.shipping_address.map(Into::into);
    let result = state
        .observe_draw(
            state
                .lottery
                .drawing()
                .draw_by_rules(user.id, tree_id, &facts, key, shipping),
        )
        .await?;
    Ok(axum::Json(result.into()))
}

/// The caller's won prizes, newest first. `grant_state` tells where each stands; a shipped
/// prize won without an address is `awaiting_address` until the address is given.
#[utoipa::path(get, path = "/api/v1/me/orders", tag = "user", params(PageQuery), security(("bearer" = [])),
    responses((status = 200, body = OrderList), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn my_orders(
    State(state): State<AppState>,
    user: User,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<OrderList>> {
    let page = Page::new(q.offset.unwrap_or(0), q.limit.unwrap_or(50));
    let orders = state.lottery.queries().user_orders(&user.id, page).await?;
    Ok(axum::Json(OrderList {
        items: orders.iter().map(OrderView::from).collect(),
        offset: page.offset,
        limit: page.limit,
    }))
}

/// Give the shipping address of a won prize that is `awaiting_address`; its delivery then
/// starts, once, however many requests race (one is answered `200`, the others `409`).
/// The body has the fields of a draw's `shipping_address`.
#[utoipa::path(put, path = "/api/v1/me/orders/{order_id}/shipping", tag = "user",
    params(("order_id" = String, Path)), request_body = ShippingRequest, security(("bearer" = [])),
    responses((status = 200, description = "the address is taken; the order is `init` and being delivered", body = OrderView),
        (status = 400, description = "the body is not JSON or the order id is malformed", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, description = "the caller has no such order", body = crate::error::ErrorBody),
        (status = 409, description = "code `conflict`: the order is not awaiting an address (the message tells its state)", body = crate::error::ErrorBody),
        (status = 422, description = "code `invalid_request`: a field is missing, unknown or invalid; the message names it", body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub async fn give_shipping(
    State(state): State<AppState>,
    user: User,
    ApiPath(order): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<OrderView>> {
    let order: OrderId = order
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("order id: {e}")))?;
    let address: ShippingRequest = address_body(&body)?;
    let order = state
        .lottery
        .fulfilment()
        .give_address(&user.id, order, address.into())
        .await?;
    Ok(axum::Json(OrderView::from(&order)))
}

/// The caller's takes of one activity: used and left.
#[utoipa::path(get, path = "/api/v1/me/activities/{id}", tag = "user", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = MyActivity), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn my_activity(
    State(state): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<axum::Json<MyActivity>> {
    let id = parse_activity_id(&id)?;
    let view = state.lottery.queries().user_activity(&user.id, id).await?;
    let takes = state
        .lottery
        .queries()
        .user_takes(&user.id, Some(id), Page::new(0, 200))
        .await?;
    Ok(axum::Json(MyActivity {
        activity_id: id.to_string(),
        take_limit: view.take_limit,
        takes_used: view.takes_used,
        takes_left: view.takes_left,
        takes: takes.iter().map(TakeView::from).collect(),
    }))
}
