//! Sessions in Redis.
//!
//! A login creates a session: a hash at `{prefix}session:{sid}` holding the
//! user, the current tenant, the tenant permissions resolved at the last
//! check, and the SHA-256 of the current refresh token (never the token).
//! Access tokens name their session; every request checks that it still
//! exists, so logout and revocation take effect at once.
//!
//! Refresh tokens are `{sid}.{secret}` and rotate on every use. The hashes
//! of the session's retired tokens are kept beside it (`{prefix}session:{sid}:retired`,
//! the last [`RETIRED_KEPT`]); presenting any of them (a replay of a rotated
//! token, however old) revokes the whole session.
//!
//! Permissions are cached in the session together with the tenant's
//! authorization epoch (`{prefix}authz:{tenant}`), which every change to
//! roles or memberships increments; a request whose session holds an older
//! epoch reloads the permissions from the database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ferro_redis::RedisPool as Pool;
use redis::AsyncCommands;
use uuid::Uuid;

use crate::{StoreError, random_hex, sha256_hex};

mod ending;

#[derive(Clone)]
pub struct SessionStore {
    pool: Pool,
    prefix: String,
    ttl: Duration,
}

/// A session as seen by a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub is_platform_admin: bool,
    pub permissions: Vec<String>,
    /// The tenant's authorization epoch when `permissions` were resolved.
    pub authz_epoch: i64,
    /// When `permissions` were last resolved from the database (unix seconds).
    pub checked_at: i64,
    /// When the session was created (unix milliseconds): a session older
    /// than the user's last password change is void.
    pub born: i64,
    /// How many times the session switched tenant; its access tokens carry
    /// the generation they were issued at, and only the current one is valid.
    pub generation: u32,
}

impl Session {
    /// Whether the cached permissions must be resolved again: the tenant's
    /// epoch moved, or they are older than `max_age` (a safety net should an
    /// epoch bump have been lost).
    pub fn needs_check(&self, current_epoch: i64, max_age: Duration) -> bool {
        current_epoch != self.authz_epoch
            || Utc::now().timestamp() - self.checked_at >= max_age.as_secs() as i64
    }
}

/// A session as listed to its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub created_at: Option<DateTime<Utc>>,
    pub refreshed_at: Option<DateTime<Utc>>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What a new session starts with.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub is_platform_admin: bool,
    pub permissions: &'a [String],
    pub authz_epoch: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// When the login began (unix milliseconds), before the password hash
    /// was read: a password change after that voids the session.
    pub born: i64,
}

/// The result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current; here is its successor.
    Rotated {
        session: Session,
        refresh_token: String,
    },
    /// The token was already used: the session is now revoked.
    Reused { user_id: Option<Uuid> },
    /// No such session (expired, logged out, or not a token of ours).
    Unknown,
}

/// How many of a session's retired refresh tokens are remembered; one
/// older than that is merely unknown. A client refreshing every hour would
/// need 40 days to retire more.
pub const RETIRED_KEPT: usize = 1000;

/// The Lua function the rotation and the switch share: `hash` joins the
/// session's retired tokens (a sorted set, in retirement order, trimmed to
/// the newest `keep`), which lives as long as the session.
macro_rules! retire_function {
    () => {
        r#"
local function retire(session, retired, hash, keep)
  local n = redis.call('HINCRBY', session, 'retired', 1)
  redis.call('ZADD', retired, n, hash)
  redis.call('ZREMRANGEBYRANK', retired, 0, -(tonumber(keep) + 1))
  local ttl = redis.call('TTL', session)
  if ttl > 0 then redis.call('EXPIRE', retired, ttl) end
end
"#
    };
}

/// Rotation: the current token is swapped for the next one, and retired.
/// Presenting a retired token again is a replay: the session is deleted.
/// (`prev` is where sessions from before the retired set kept their one
/// retired token.) Any other secret is simply unknown, so knowing a session
/// id is not enough to end someone's session.
const ROTATE: &str = concat!(
    retire_function!(),
    r#"
local cur = redis.call('HGET', KEYS[1], 'refresh')
if not cur then return {0, ''} end
if cur == ARGV[1] then
  redis.call('HSET', KEYS[1], 'refresh', ARGV[2], 'refreshed', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  retire(KEYS[1], KEYS[2], cur, ARGV[5])
  return {1, ''}
end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) or redis.call('HGET', KEYS[1], 'prev') == ARGV[1] then
  local uid = redis.call('HGET', KEYS[1], 'user') or ''
  redis.call('DEL', KEYS[1], KEYS[2])
  return {-1, uid}
end
return {0, ''}
"#
);

/// Switch: the new tenant, its permissions and a rotated refresh token (the
/// current one retired), and the next tenant generation (returned; -1 if the
/// session is gone), which voids every access token issued before the switch.
const SWITCH: &str = concat!(
    retire_function!(),
    r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local cur = redis.call('HGET', KEYS[1], 'refresh')
redis.call('HSET', KEYS[1], 'tenant', ARGV[1], 'admin', ARGV[2], 'perms', ARGV[3], 'epoch', ARGV[4],
  'checked', ARGV[5], 'refresh', ARGV[6], 'refreshed', ARGV[7])
if cur then retire(KEYS[1], KEYS[2], cur, ARGV[8]) end
return redis.call('HINCRBY', KEYS[1], 'gen', 1)
"#
);

/// HSET only on a session that still exists (never resurrect a revoked one).
const UPDATE_IF_EXISTS: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"#;

const SESSION_FIELDS: [&str; 8] = [
    "user", "tenant", "admin", "perms", "epoch", "checked", "born", "gen",
];

fn parse_refresh(token: &str) -> Option<(Uuid, &str)> {
    let (sid, secret) = token.split_once('.')?;
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((Uuid::parse_str(sid).ok()?, secret))
}

impl SessionStore {
    pub fn new(pool: Pool, prefix: impl Into<String>, ttl: Duration) -> Self {
        Self {
            pool,
            prefix: prefix.into(),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn session_key(&self, sid: Uuid) -> String {
        format!("{}session:{sid}", self.prefix)
    }

    /// The hashes of the session's retired refresh tokens.
    fn retired_key(&self, sid: Uuid) -> String {
        format!("{}session:{sid}:retired", self.prefix)
    }

    fn user_key(&self, uid: Uuid) -> String {
        format!("{}user_sessions:{uid}", self.prefix)
    }

    fn authz_key(&self, tid: Uuid) -> String {
        format!("{}authz:{tid}", self.prefix)
    }

    /// Creates a session; returns it with its first refresh token.
    pub async fn create(&self, new: NewSession<'_>) -> Result<(Session, String), StoreError> {
        let sid = Uuid::new_v4();
        let secret = random_hex(32);
        let now = Utc::now().to_rfc3339();
        let key = self.session_key(sid);
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let fields: Vec<(&str, String)> = vec![
            ("user", new.user_id.to_string()),
            ("tenant", new.tenant_id.to_string()),
            (
                "admin",
                if new.is_platform_admin { "1" } else { "0" }.to_owned(),
            ),
            ("perms", new.permissions.join(",")),
            ("epoch", new.authz_epoch.to_string()),
            ("checked", Utc::now().timestamp().to_string()),
            ("born", new.born.to_string()),
            ("refresh", sha256_hex(&secret)),
            ("created", now.clone()),
            ("refreshed", now),
            ("ip", new.ip.unwrap_or_default().to_owned()),
            (
                "ua",
                new.user_agent
                    .unwrap_or_default()
                    .chars()
                    .take(256)
                    .collect(),
            ),
        ];
        redis::pipe()
            .atomic()
            .hset_multiple(&key, &fields)
            .ignore()
            .expire(&key, self.ttl.as_secs() as i64)
            .ignore()
            .sadd(self.user_key(new.user_id), sid.to_string())
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        let session = Session {
            id: sid,
            user_id: new.user_id,
            tenant_id: new.tenant_id,
            is_platform_admin: new.is_platform_admin,
            permissions: new.permissions.to_vec(),
            authz_epoch: new.authz_epoch,
            checked_at: Utc::now().timestamp(),
            born: new.born,
            generation: 0,
        };
        Ok((session, format!("{sid}.{secret}")))
    }

    /// The session for a request, and the tenant's current authorization
    /// epoch, in one round trip. `None` if the session is gone, or the token
    /// (in `tenant_id`, at `generation`) predates a switch of tenant.
    pub async fn load(
        &self,
        sid: Uuid,
        tenant_id: Uuid,
        generation: u32,
    ) -> Result<Option<(Session, i64)>, StoreError> {
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let (fields, epoch): (Vec<Option<String>>, Option<i64>) = redis::pipe()
            .hmget(self.session_key(sid), &SESSION_FIELDS)
            .get(self.authz_key(tenant_id))
            .query_async(&mut conn)
            .await?;
        let session = match session_from_fields(sid, &fields)? {
            Some(s) if s.tenant_id == tenant_id && s.generation == generation => s,
            _ => return Ok(None),
        };
        Ok(Some((session, epoch.unwrap_or(0))))
    }

    /// Presents a refresh token: rotates it, or revokes the session on reuse.
    pub async fn rotate(&self, token: &str) -> Result<Rotation, StoreError> {
        let Some((sid, secret)) = parse_refresh(token) else {
            return Ok(Rotation::Unknown);
        };
        let next = random_hex(32);
        let key = self.session_key(sid);
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let (code, uid): (i64, String) = redis::Script::new(ROTATE)
            .key(&key)
            .key(self.retired_key(sid))
            .arg(sha256_hex(secret))
            .arg(sha256_hex(&next))
            .arg(Utc::now().to_rfc3339())
            .arg(self.ttl.as_secs())
            .arg(RETIRED_KEPT)
            .invoke_async(&mut conn)
            .await?;
        match code {
            1 => {
                let fields: Vec<Option<String>> = conn.hmget(&key, &SESSION_FIELDS).await?;
                match session_from_fields(sid, &fields)? {
                    Some(session) => Ok(Rotation::Rotated {
                        session,
                        refresh_token: format!("{sid}.{next}"),
                    }),
                    None => Ok(Rotation::Unknown),
                }
            }
            -1 => {
                let user_id = Uuid::parse_str(&uid).ok();
                if let Some(u) = user_id {
                    let _: () = conn.srem(self.user_key(u), sid.to_string()).await?;
                }
                tracing::warn!(session = %sid, "refresh token reused; session revoked");
                Ok(Rotation::Reused { user_id })
            }
            _ => Ok(Rotation::Unknown),
        }
    }

    /// Moves a session to another tenant with its permissions there, and
    /// rotates its refresh token; returns the new refresh token and the
    /// session's new tenant generation (`None` if the session is gone).
    /// The current refresh token is retired, so a client
    /// that keeps using it afterwards (someone else switched with a stolen
    /// access token) trips replay detection and ends the session.
    pub async fn switch_tenant(
        &self,
        sid: Uuid,
        tenant_id: Uuid,
        is_platform_admin: bool,
        permissions: &[String],
        authz_epoch: i64,
    ) -> Result<Option<(String, u32)>, StoreError> {
        let next = random_hex(32);
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let generation: i64 = redis::Script::new(SWITCH)
            .key(self.session_key(sid))
            .key(self.retired_key(sid))
            .arg(tenant_id.to_string())
            .arg(if is_platform_admin { "1" } else { "0" })
            .arg(permissions.join(","))
            .arg(authz_epoch)
            .arg(Utc::now().timestamp())
            .arg(sha256_hex(&next))
            .arg(Utc::now().to_rfc3339())
            .arg(RETIRED_KEPT)
            .invoke_async(&mut conn)
            .await?;
        Ok(u32::try_from(generation)
            .ok()
            .map(|generation| (format!("{sid}.{next}"), generation)))
    }

    /// Stores freshly resolved permissions and platform flag.
    pub async fn update_permissions(
        &self,
        sid: Uuid,
        is_platform_admin: bool,
        permissions: &[String],
        authz_epoch: i64,
    ) -> Result<(), StoreError> {
        self.update_if_exists(
            sid,
            &[
                (
                    "admin",
                    if is_platform_admin { "1" } else { "0" }.to_owned(),
                ),
                ("perms", permissions.join(",")),
                ("epoch", authz_epoch.to_string()),
                ("checked", Utc::now().timestamp().to_string()),
            ],
        )
        .await
        .map(|_| ())
    }

    /// Moves the session's birth to `born` (unix milliseconds): the session
    /// that changed the user's password is not one of those the change voids.
    /// Returns whether the session still existed.
    pub async fn set_born(&self, sid: Uuid, born: i64) -> Result<bool, StoreError> {
        self.update_if_exists(sid, &[("born", born.to_string())])
            .await
    }

    async fn update_if_exists(
        &self,
        sid: Uuid,
        fields: &[(&str, String)],
    ) -> Result<bool, StoreError> {
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let script = redis::Script::new(UPDATE_IF_EXISTS);
        let mut script = script.key(self.session_key(sid));
        for (k, v) in fields {
            script.arg(*k).arg(v);
        }
        let updated: i64 = script.invoke_async(&mut conn).await?;
        Ok(updated == 1)
    }
}

fn session_from_fields(
    sid: Uuid,
    fields: &[Option<String>],
) -> Result<Option<Session>, StoreError> {
    let [user, tenant, admin, perms, epoch, checked, born, generation] = fields else {
        return Err(StoreError::Corrupt("field count"));
    };
    let (Some(user), Some(tenant)) = (user, tenant) else {
        return Ok(None);
    };
    Ok(Some(Session {
        id: sid,
        user_id: Uuid::parse_str(user).map_err(|_| StoreError::Corrupt("user"))?,
        tenant_id: Uuid::parse_str(tenant).map_err(|_| StoreError::Corrupt("tenant"))?,
        is_platform_admin: admin.as_deref() == Some("1"),
        permissions: perms
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        authz_epoch: epoch.as_deref().and_then(|e| e.parse().ok()).unwrap_or(0),
        checked_at: checked.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0),
        born: born.as_deref().and_then(|b| b.parse().ok()).unwrap_or(0),
        generation: generation
            .as_deref()
            .and_then(|g| g.parse().ok())
            .unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_must_look_like_ours() {
        let sid = Uuid::new_v4();
        let good = format!("{sid}.{}", "ab".repeat(32));
        assert_eq!(parse_refresh(&good).map(|(s, _)| s), Some(sid));
        assert!(parse_refresh("nonsense").is_none());
        assert!(parse_refresh(&format!("{sid}.short")).is_none());
        assert!(parse_refresh(&format!("not-a-uuid.{}", "ab".repeat(32))).is_none());
    }
}
