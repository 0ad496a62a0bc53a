//! The server's API as the tool uses it: deploying and starting activities, reading them back,
//! and the wire format of draw answers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Conn, Endpoint, Reply, Req};
use crate::error::LoadError;

/// The activity a run deploys: one coupon award.
#[derive(Debug, Clone, Serialize)]
pub struct ActivitySpec {
    /// Draws the activity allows in all.
    pub stock: u32,
    /// Draws each user may make.
    pub take_limit: u32,
    /// How many coupons exist.
    pub award_count: u32,
    /// The probability of winning a coupon in one draw, a decimal string (`"0.5"`).
    pub award_rate: String,
}

impl ActivitySpec {
    fn deploy_body(&self, name: &str) -> Value {
        let now = chrono::Utc::now();
        json!({
            "name": name,
            "description": "deployed by lottery-load",
            "begin_time": (now - chrono::Duration::minutes(1)).to_rfc3339(),
            "end_time": (now + chrono::Duration::days(1)).to_rfc3339(),
            "stock": self.stock,
            "take_limit": self.take_limit,
            "strategy": {"mode": "single", "awards": [{
                "type": "coupon", "name": "Load coupon", "content": "LOAD",
                "count": self.award_count, "rate": self.award_rate
            }]}
        })
    }
}

/// A draw's `200` answer (the fields the tool reads).
#[derive(Debug, Clone, Deserialize)]
pub struct DrawAnswer {
    pub result: String,
    pub take_id: String,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub award: Option<DrawnAward>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DrawnAward {
    pub award_id: String,
}

#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    code: String,
}

/// The name an error answer is counted under: its `code` (`sold_out`, `unavailable`, ...),
/// or `http_<status>` when the body has none.
pub fn error_name(reply: &Reply) -> String {
    serde_json::from_slice::<ErrorAnswer>(&reply.body)
        .map(|e| e.code)
        .unwrap_or_else(|_| format!("http_{}", reply.status))
}

/// An admin session on one connection.
#[derive(Debug)]
pub struct Admin {
    conn: Conn,
    auth: HeaderValue,
}

impl Admin {
    pub fn new(endpoint: Arc<Endpoint>, timeout: Duration, auth: HeaderValue) -> Self {
        Self {
            conn: Conn::new(endpoint, timeout),
            auth,
        }
    }

    /// Deploys `spec` and walks it through review to `doing`; returns its id.
    pub async fn deploy_running(
        &mut self,
        spec: &ActivitySpec,
        name: &str,
    ) -> Result<String, LoadError> {
        let body = spec.deploy_body(name);
        let req = Req::post(
            "/api/v1/admin/activities",
            &self.auth,
            Some(json_bytes(&body)),
        );
        let deployed = call(&mut self.conn, "deploy an activity", req).await?;
        let id = deployed["activity_id"]
            .as_str()
            .ok_or_else(|| answer("deploy an activity", "no activity_id"))?
            .to_owned();
        for action in ["submit", "approve"] {
            self.act(&id, action).await?;
        }
        // The scheduler may start an approved activity whose window is open before we do.
        if let Err(e) = self.act(&id, "start").await
            && self.state(&id).await? != "doing"
        {
            return Err(e);
        }
        Ok(id)
    }

    async fn act(&mut self, id: &str, action: &str) -> Result<Value, LoadError> {
        let path = format!("/api/v1/admin/activities/{id}/actions/{action}");
        let req = Req::post(&path, &self.auth, None);
        call(&mut self.conn, &format!("{action} activity {id}"), req).await
    }

    async fn state(&mut self, id: &str) -> Result<String, LoadError> {
        let detail = self.detail(id).await?;
        Ok(detail["state"].as_str().unwrap_or_default().to_owned())
    }

    /// The admin's view of an activity (`GET /api/v1/admin/activities/{id}`).
    pub async fn detail(&mut self, id: &str) -> Result<Value, LoadError> {
        let path = format!("/api/v1/admin/activities/{id}");
        let req = Req::get(&path, &self.auth);
        call(&mut self.conn, &format!("read activity {id}"), req).await
    }
}

/// Sends an admin request and reads its JSON answer; anything but 2xx is an error.
async fn call(conn: &mut Conn, what: &str, req: Req<'_>) -> Result<Value, LoadError> {
    let reply = conn
        .send(req)
        .await
        .map_err(|source| LoadError::Transport {
            what: what.to_owned(),
            source,
        })?;
    if !reply.is_success() {
        let mut body = String::from_utf8_lossy(&reply.body).into_owned();
        if reply.status == 401 {
            body.push_str(" (the token was refused: give the server's own --config or --data-dir)");
        }
        return Err(LoadError::Refused {
            what: what.to_owned(),
            status: reply.status,
            body,
        });
    }
    serde_json::from_slice(&reply.body).map_err(|e| answer(what, &e.to_string()))
}

fn answer(what: &str, detail: &str) -> LoadError {
    LoadError::Answer {
        what: what.to_owned(),
        detail: detail.to_owned(),
    }
}

pub(crate) fn json_bytes(v: &Value) -> Bytes {
    Bytes::from(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_named_by_their_code() {
        let reply = Reply {
            status: 409,
            body: Bytes::from_static(br#"{"code":"sold_out","message":"sold out"}"#),
        };
        assert_eq!(error_name(&reply), "sold_out");
        let reply = Reply {
            status: 502,
            body: Bytes::from_static(b"bad gateway"),
        };
        assert_eq!(error_name(&reply), "http_502");
    }

    #[test]
    fn the_deploy_body_has_one_coupon_award() {
        let spec = ActivitySpec {
            stock: 100,
            take_limit: 1,
            award_count: 10,
            award_rate: "0.5".into(),
        };
        let body = spec.deploy_body("x");
        assert_eq!(body["stock"], 100);
        assert_eq!(body["strategy"]["awards"][0]["type"], "coupon");
        assert_eq!(body["strategy"]["awards"][0]["count"], 10);
    }
}
