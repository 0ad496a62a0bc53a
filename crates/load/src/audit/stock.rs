//! What the stock store holds for an activity. Cluster mode: the Redis keys of
//! `lottery-stock` (`<prefix>:{a:<id>}:stock`, `:gen`, `:award:<id>`, the `:pending` sorted
//! set of claims not yet settled and each claim's `:claim:<id>` record). Embedded mode: the
//! stock lives in the server's memory, out of reach; the admin API's view of it is read
//! instead (`stock_left` and each award's `left`), and pending claims cannot be seen.

use deadpool_redis::redis;
use lottery_server::config::Config;
use lottery_stock::RedisConnection;

use super::AdminAccess;
use crate::api::Admin;
use crate::error::LoadError;

/// A claim the store holds as not yet settled, of the current generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingClaim {
    pub take_id: i64,
    pub user_id: String,
    /// It took one of the activity's stock.
    pub took: bool,
    /// The award it took one of.
    pub award: Option<i64>,
}

/// The stock store's view of one activity.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// `None` when the store has not loaded the activity (nothing to compare).
    pub stock_left: Option<i64>,
    /// Per award id; `None` for an award the store does not hold.
    pub awards_left: Vec<(i64, Option<i64>)>,
    pub pending: Vec<PendingClaim>,
    /// Pending claims can be seen (Redis) or not (embedded).
    pub sees_pending: bool,
}

impl Held {
    /// The pending claims' take ids with their users, to look for in the records.
    pub fn pending_claims(&self) -> Vec<(i64, String)> {
        self.pending
            .iter()
            .map(|c| (c.take_id, c.user_id.clone()))
            .collect()
    }
}

/// Where the stock is read from.
#[derive(Debug)]
pub enum StockSource {
    Redis {
        conn: RedisConnection,
        prefix: String,
    },
    AdminApi(Admin),
}

impl StockSource {
    pub async fn connect(config: &Config, admin: Option<AdminAccess>) -> Result<Self, LoadError> {
        if let Some(redis) = &config.redis
            && config.database.is_some()
        {
            // The platform's own client: a Redis Cluster is followed slot by slot.
            let conn = RedisConnection::connect(
                &redis.target(),
                2,
                std::time::Duration::from_millis(redis.timeout_ms.unwrap_or(2_000)),
            )
            .await
            .map_err(|e| LoadError::Stock(e.to_string()))?;
            return Ok(Self::Redis {
                conn,
                prefix: config.redis_prefix(),
            });
        }
        let admin = admin.ok_or_else(|| {
            LoadError::Invalid(
                "embedded mode keeps its stock in the server's memory: the audit needs the \
                 server's URL to read it through the admin API"
                    .into(),
            )
        })?;
        Ok(Self::AdminApi(Admin::new(
            admin.endpoint,
            admin.timeout,
            admin.auth,
        )))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Redis { .. } => "redis",
            Self::AdminApi(_) => "admin_api",
        }
    }

    pub async fn read(&mut self, activity: i64, awards: &[i64]) -> Result<Held, LoadError> {
        match self {
            Self::Redis { conn, prefix } => {
                let base = format!("{prefix}:{{a:{activity}}}");
                read_redis(conn, &base, awards).await
            }
            Self::AdminApi(admin) => read_admin(admin, activity).await,
        }
    }
}

async fn get<T: redis::FromRedisValue>(
    conn: &mut RedisConnection,
    cmd: &redis::Cmd,
) -> Result<T, LoadError> {
    conn.query(cmd)
        .await
        .map_err(|e| LoadError::Stock(e.to_string()))
}

async fn read_redis(
    conn: &mut RedisConnection,
    base: &str,
    awards: &[i64],
) -> Result<Held, LoadError> {
    let generation: Option<String> =
        get(conn, redis::cmd("GET").arg(format!("{base}:gen"))).await?;
    let stock_left: Option<i64> = get(conn, redis::cmd("GET").arg(format!("{base}:stock"))).await?;
    let mut awards_left = Vec::with_capacity(awards.len());
    for award in awards {
        let left: Option<i64> =
            get(conn, redis::cmd("GET").arg(format!("{base}:award:{award}"))).await?;
        awards_left.push((*award, left));
    }
    let pending = match generation {
        Some(g) => pending_claims(conn, base, &g).await?,
        None => Vec::new(),
    };
    Ok(Held {
        stock_left,
        awards_left,
        pending,
        sees_pending: true,
    })
}

/// The claims in the pending set whose record is still held (`G|...`) and of the current
/// generation (those of a replaced generation were counted by the reload that replaced it).
async fn pending_claims(
    conn: &mut RedisConnection,
    base: &str,
    generation: &str,
) -> Result<Vec<PendingClaim>, LoadError> {
    let ids: Vec<String> = get(
        conn,
        redis::cmd("ZRANGE")
            .arg(format!("{base}:pending"))
            .arg(0)
            .arg(-1),
    )
    .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut mget = redis::cmd("MGET");
    for id in &ids {
        mget.arg(format!("{base}:claim:{id}"));
    }
    let values: Vec<Option<String>> = get(conn, &mget).await?;
    Ok(ids
        .iter()
        .zip(values)
        .filter_map(|(id, value)| parse_claim(id, value.as_deref()?, generation))
        .collect())
}

/// A claim record `G|took|award|fallback|exhausted|generation|user`.
fn parse_claim(id: &str, raw: &str, generation: &str) -> Option<PendingClaim> {
    let parts: Vec<&str> = raw.splitn(7, '|').collect();
    let [
        "G",
        took,
        award,
        _fallback,
        _exhausted,
        claim_generation,
        user,
    ] = parts[..]
    else {
        return None;
    };
    if claim_generation != generation {
        return None;
    }
    Some(PendingClaim {
        take_id: id.parse().ok()?,
        user_id: user.to_owned(),
        took: took == "1",
        award: award.parse().ok(),
    })
}

async fn read_admin(admin: &mut Admin, activity: i64) -> Result<Held, LoadError> {
    let detail = admin.detail(&activity.to_string()).await?;
    let number = |v: &serde_json::Value| v.as_i64();
    let awards_left = detail["strategy"]["awards"]
        .as_array()
        .map(|awards| {
            awards
                .iter()
                .filter_map(|a| {
                    let id = a["award_id"].as_str()?.parse().ok()?;
                    Some((id, number(&a["left"])))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Held {
        stock_left: number(&detail["stock_left"]),
        awards_left,
        pending: Vec::new(),
        sees_pending: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_of_the_current_generation_are_parsed() {
        let c = parse_claim("42", "G|1|7|0|0|3|alice|x", "3").expect("current");
        assert_eq!(c.take_id, 42);
        assert_eq!(c.user_id, "alice|x");
        assert!(c.took);
        assert_eq!(c.award, Some(7));
        let none = parse_claim("43", "G|1||0|0|3|bob", "3").expect("no award");
        assert_eq!(none.award, None);
        assert!(
            parse_claim("44", "G|1|7|0|0|2|carol", "3").is_none(),
            "older generation"
        );
        assert!(
            parse_claim("45", "R|G|1|7|0|0|3|dave", "3").is_none(),
            "released"
        );
    }
}
