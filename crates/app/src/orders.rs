//! Won orders after the draw: the winner gives a shipping address the draw did not carry,
//! and operators list orders by state.

use std::sync::Arc;

use lottery_activity::{GiveAddress, OrderFilter, OrderRepository, Page, WinOrder};
use lottery_award::{GrantState, ShippingAddress};
use lottery_domain::{Clock, OrderId, UserId};

use crate::AppError;
use crate::commands::Administration;
use crate::draw::invoice_message;

/// A winner's part after the draw: the shipping address of a prize that waits for one.
#[derive(Clone)]
pub struct Fulfilment {
    pub(crate) orders: Arc<dyn OrderRepository>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Fulfilment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fulfilment").finish_non_exhaustive()
    }
}

/// One page of orders in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub items: Vec<WinOrder>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_after: Option<OrderId>,
}

fn not_awaiting(order: OrderId, state: GrantState) -> AppError {
    AppError::Conflict(format!(
        "order {order} is not awaiting an address (it is {state})"
    ))
}

impl Fulfilment {
    /// Gives an order that awaits its shipping address the address, and starts its
    /// delivery: the order moves to `init` and its delivery message is written in one
    /// transaction, once, however many callers race (the others are told it is not awaiting
    /// an address any more). Returns the order as it is then.
    pub async fn give_address(
        &self,
        user: &UserId,
        order: OrderId,
        address: ShippingAddress,
    ) -> Result<WinOrder, AppError> {
        address.validate()?;
        let found = self
            .orders
            .order(user, order)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("order {order}")))?;
        let next = found
            .grant_state
            .move_to(GrantState::Init)
            .map_err(|_| not_awaiting(order, found.grant_state))?;
        let message = invoice_message(&found, Some(address), self.clock.now())?;
        match self.orders.give_address(user, order, &message).await? {
            GiveAddress::Given => Ok(WinOrder {
                grant_state: next,
                ..found
            }),
            GiveAddress::NotAwaiting(state) => Err(not_awaiting(order, state)),
            GiveAddress::NotFound => Err(AppError::NotFound(format!("order {order}"))),
        }
    }
}

impl Administration {
    /// Orders in a state across every shard (of one activity, if given), in id order after
    /// `after`, `limit` (1 to 200) at a time.
    pub async fn orders_in_state(
        &self,
        filter: OrderFilter,
        after: Option<OrderId>,
        limit: u32,
    ) -> Result<OrderPage, AppError> {
        if !(1..=Page::MAX_LIMIT).contains(&limit) {
            return Err(AppError::Invalid(format!(
                "limit must be 1 to {}, got {limit}",
                Page::MAX_LIMIT
            )));
        }
        let items = self.orders.orders_in_state(&filter, after, limit).await?;
        let next_after = (items.len() == limit as usize)
            .then(|| items.last().map(|o| o.order_id))
            .flatten();
        Ok(OrderPage { items, next_after })
    }
}
