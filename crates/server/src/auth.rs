//! JWT (HS256) authentication with two roles: admins manage activities, users draw as
//! themselves (the token's subject is the user id).

use std::path::Path;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lottery_domain::UserId;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    Admin,
    User,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: TokenRole,
    pub iat: i64,
    pub exp: i64,
}

/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: u64,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not read or write the token secret at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the token secret must be at least 32 characters")]
    TooShort,
    #[error("could not sign the token: {0}")]
    Sign(String),
}

impl Keys {
    pub fn new(secret: &[u8], ttl_secs: u64) -> Result<Self, KeyError> {
        if secret.len() < 32 {
            return Err(KeyError::TooShort);
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl_secs,
        })
    }

    /// The configured secret, or the one kept in `data_dir` (created on first use, readable
    /// by the owner only), so `lottery token` and `lottery serve` agree without setup.
    pub fn load(
        configured: Option<&str>,
        data_dir: &Path,
        ttl_secs: u64,
    ) -> Result<Self, KeyError> {
        if let Some(secret) = configured {
            return Self::new(secret.as_bytes(), ttl_secs);
        }
        let path = data_dir.join("jwt-secret");
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let secret = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let secret: String = {
                    use rand::Rng;
                    let mut rng = rand::rng();
                    (0..48)
                        .map(|_| {
                            char::from(
                                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                    [rng.random_range(0..62)],
                            )
                        })
                        .collect()
                };
                write_private(&path, &secret).map_err(io)?;
                secret
            }
            Err(e) => return Err(io(e)),
        };
        Self::new(secret.as_bytes(), ttl_secs)
    }

    pub fn mint(&self, subject: &str, role: TokenRole) -> Result<String, KeyError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: subject.to_owned(),
            role,
            iat: now,
            exp: now + self.ttl_secs as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| KeyError::Sign(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|d| d.claims)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))
    }
}

fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized("missing Authorization: Bearer <token> header".into())
        })?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".into()))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
        })
}

/// Anything holding the keys (the app state).
pub trait HasKeys {
    fn keys(&self) -> &Arc<Keys>;
}

/// An authenticated admin.
#[derive(Debug, Clone)]
pub struct Admin {
    pub name: String,
}

/// An authenticated end user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
}

impl<S: HasKeys + Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claims = state.keys().verify(bearer(parts)?)?;
        match claims.role {
            TokenRole::Admin => Ok(Admin { name: claims.sub }),
            TokenRole::User => Err(ApiError::Forbidden("this needs an admin token".into())),
        }
    }
}

impl<S: HasKeys + Send + Sync> FromRequestParts<S> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claims = state.keys().verify(bearer(parts)?)?;
        match claims.role {
            TokenRole::User => UserId::new(claims.sub).map(|id| User { id }).map_err(|e| {
                ApiError::Unauthorized(format!("token subject is not a valid user id: {e}"))
            }),
            TokenRole::Admin => Err(ApiError::Forbidden(
                "this needs a user token: draws are made as a user".into(),
            )),
        }
    }
}
