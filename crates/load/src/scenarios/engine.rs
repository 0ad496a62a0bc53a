//! The engine every scenario runs on: workers, each with its own keep-alive connection,
//! either closed (send, wait for the answer, send again) or paced (request `i` is due at
//! `start + i / rate`; its latency counts from that moment, so a server that holds the
//! workers up is charged for the requests it kept from being sent: no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, join_all};
use hyper::header::HeaderValue;

use crate::api::{DrawAnswer, error_name};
use crate::audit::Win;
use crate::client::{Conn, Endpoint, Req};
use crate::error::LoadError;
use crate::report::{Class, Tally};
use crate::tokens::Tokens;

/// What one request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST /api/v1/activities/{id}/draw` with an idempotency key.
    Draw,
    /// `GET /api/v1/activities/{id}`.
    ActivityView,
    /// `GET /api/v1/me/activities/{id}`.
    MyActivity,
    /// `GET /api/v1/me/orders` (the first page).
    MyOrders,
    /// `GET /api/v1/admin/activities` (the first page).
    AdminList,
    /// `GET /api/v1/admin/activities/{id}`.
    AdminDetail,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Self::Draw => "draw",
            Self::ActivityView => "activity_view",
            Self::MyActivity => "my_activity",
            Self::MyOrders => "my_orders",
            Self::AdminList => "admin_list",
            Self::AdminDetail => "admin_detail",
        }
    }
}

/// Request number -> what it does and which user (a number) sends it.
pub type Picker = Arc<dyn Fn(u64) -> (Op, u64) + Send + Sync>;

/// A group of workers.
pub struct Plan {
    pub workers: usize,
    /// Requests per second for the whole group (paced), or `None` (closed).
    pub pace: Option<f64>,
    /// No request is started (closed) or scheduled (paced) after this long.
    pub duration: Option<Duration>,
    /// At most this many requests.
    pub total: Option<u64>,
    pub pick: Picker,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("workers", &self.workers)
            .field("pace", &self.pace)
            .field("duration", &self.duration)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

/// Work beside the workers (the mixed scenario's deploys), given the start instant and the
/// shared tally.
pub type SideTask = Box<dyn FnOnce(Instant, Shared) -> BoxFuture<'static, ()> + Send>;

/// The tally every worker records into.
pub type Shared = Arc<Mutex<Tally>>;

pub fn lock(tally: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Who draws and reads.
#[derive(Debug)]
pub enum Users {
    /// Returning users, taken round robin; their tokens are minted once.
    Pool(Vec<(Arc<str>, HeaderValue)>),
    /// A new user for every request number.
    Fresh,
}

/// Everything a request needs: where, who, what activity.
#[derive(Debug)]
pub struct Driver {
    endpoint: Arc<Endpoint>,
    timeout: Duration,
    tokens: Tokens,
    admin: HeaderValue,
    users: Users,
    /// Tells this run's user ids and idempotency keys from any other run's.
    tag: String,
    draw_path: String,
    view_path: String,
    mine_path: String,
    detail_path: String,
}

impl Driver {
    pub fn new(
        target: &super::Target,
        activity_id: &str,
        pool: Option<u64>,
        tag: String,
    ) -> Result<Self, LoadError> {
        let users = match pool {
            Some(n) => Users::Pool(
                (0..n.max(1))
                    .map(|i| {
                        let id: Arc<str> = Arc::from(format!("{tag}-u{i}"));
                        Ok((id.clone(), target.tokens.user(&id)?))
                    })
                    .collect::<Result<_, LoadError>>()?,
            ),
            None => Users::Fresh,
        };
        Ok(Self {
            endpoint: target.endpoint.clone(),
            timeout: target.timeout,
            tokens: target.tokens.clone(),
            admin: target.tokens.admin("lottery-load")?,
            users,
            draw_path: format!("/api/v1/activities/{activity_id}/draw"),
            view_path: format!("/api/v1/activities/{activity_id}"),
            mine_path: format!("/api/v1/me/activities/{activity_id}"),
            detail_path: format!("/api/v1/admin/activities/{activity_id}"),
            tag,
        })
    }

    fn user(&self, n: u64) -> Result<(Arc<str>, HeaderValue), LoadError> {
        match &self.users {
            Users::Pool(pool) => {
                let i = usize::try_from(n % pool.len().max(1) as u64).unwrap_or(0);
                pool.get(i)
                    .cloned()
                    .ok_or_else(|| LoadError::Invalid("no users".into()))
            }
            Users::Fresh => {
                let id: Arc<str> = Arc::from(format!("{}-n{n}", self.tag));
                let auth = self.tokens.user(&id)?;
                Ok((id, auth))
            }
        }
    }

    async fn perform(
        &self,
        conn: &mut Conn,
        op: Op,
        user: u64,
        seq: u64,
        since: Instant,
        tally: &Shared,
    ) {
        let (user_id, auth) = if matches!(op, Op::AdminList | Op::AdminDetail) {
            (Arc::from("admin"), self.admin.clone())
        } else {
            match self.user(user) {
                Ok(u) => u,
                Err(_) => {
                    lock(tally).record(op.name(), since.elapsed(), "token_error", Class::Transport);
                    return;
                }
            }
        };
        let key = format!("{}-{seq}", self.tag);
        let req = match op {
            Op::Draw => Req {
                idempotency_key: Some(&key),
                ..Req::post(&self.draw_path, &auth, None)
            },
            Op::ActivityView => Req::get(&self.view_path, &auth),
            Op::MyActivity => Req::get(&self.mine_path, &auth),
            Op::MyOrders => Req::get("/api/v1/me/orders", &auth),
            Op::AdminList => Req::get("/api/v1/admin/activities", &auth),
            Op::AdminDetail => Req::get(&self.detail_path, &auth),
        };
        let result = conn.send(req).await;
        let latency = since.elapsed();
        let (answer, class, win) = match result {
            Ok(reply) if reply.is_success() => match op {
                Op::Draw => draw_answer(&reply.body, &user_id),
                _ => ("ok".to_owned(), Class::Ok, None),
            },
            Ok(reply) => (error_name(&reply), Class::of_status(reply.status), None),
            Err(e) => (e.answer().to_owned(), Class::Transport, None),
        };
        let mut t = lock(tally);
        if op == Op::Draw && matches!(class, Class::ServerError | Class::Transport) {
            t.unknown_outcomes += 1;
        }
        t.record(op.name(), latency, &answer, class);
        t.wins.extend(win);
    }
}

fn draw_answer(body: &[u8], user: &str) -> (String, Class, Option<Win>) {
    let Ok(a) = serde_json::from_slice::<DrawAnswer>(body) else {
        return ("unreadable".to_owned(), Class::Ok, None);
    };
    let win = (a.result == "win").then(|| Win {
        user_id: user.to_owned(),
        take_id: a.take_id.clone(),
        order_id: a.order_id.clone().unwrap_or_default(),
        award_id: a.award.map(|x| x.award_id).unwrap_or_default(),
    });
    (a.result, Class::Ok, win)
}

/// What the engine measured.
#[derive(Debug)]
pub struct Ran {
    pub tally: Tally,
    pub started_at: DateTime<Utc>,
    pub took: Duration,
}

struct Group {
    plan: Plan,
    next: AtomicU64,
}

/// Opens every worker's connection, then starts them all at one instant and waits for the
/// last answer.
pub async fn run(
    driver: Arc<Driver>,
    plans: Vec<Plan>,
    sides: Vec<SideTask>,
) -> Result<Ran, LoadError> {
    let workers: usize = plans.iter().map(|p| p.workers).sum();
    let conns = join_all((0..workers).map(|_| {
        let mut conn = Conn::new(driver.endpoint.clone(), driver.timeout);
        async move {
            // A connection that cannot be opened now is opened again by its first request,
            // which then counts the failure.
            let _ = conn.open().await;
            conn
        }
    }))
    .await;
    let tally: Shared = Arc::default();
    let started_at = Utc::now();
    let start = Instant::now();
    let mut conns = conns.into_iter();
    let mut handles = Vec::with_capacity(workers + sides.len());
    for plan in plans {
        let group = Arc::new(Group {
            plan,
            next: AtomicU64::new(0),
        });
        for conn in conns.by_ref().take(group.plan.workers) {
            let work = worker(driver.clone(), group.clone(), conn, start, tally.clone());
            handles.push(tokio::spawn(work));
        }
    }
    for side in sides {
        handles.push(tokio::spawn(side(start, tally.clone())));
    }
    for handle in handles {
        handle
            .await
            .map_err(|e| LoadError::Invalid(format!("a worker stopped: {e}")))?;
    }
    let took = start.elapsed();
    let tally = std::mem::take(&mut *lock(&tally));
    Ok(Ran {
        tally,
        started_at,
        took,
    })
}

async fn worker(
    driver: Arc<Driver>,
    group: Arc<Group>,
    mut conn: Conn,
    start: Instant,
    tally: Shared,
) {
    let plan = &group.plan;
    let end = plan.duration.map(|d| start + d);
    loop {
        let seq = group.next.fetch_add(1, Ordering::Relaxed);
        if plan.total.is_some_and(|t| seq >= t) {
            return;
        }
        let since = match plan.pace {
            Some(rate) => {
                let due = start + Duration::from_secs_f64(seq as f64 / rate);
                if end.is_some_and(|e| due >= e) {
                    return;
                }
                tokio::time::sleep_until(due.into()).await;
                lock(&tally).record_lag(due.elapsed());
                due
            }
            None => {
                let now = Instant::now();
                if end.is_some_and(|e| now >= e) {
                    return;
                }
                now
            }
        };
        let (op, user) = (plan.pick)(seq);
        driver
            .perform(&mut conn, op, user, seq, since, &tally)
            .await;
    }
}
