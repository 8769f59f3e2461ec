//! Ending sessions (one, a user's, a user's in one tenant), listing a
//! user's sessions, the tenants' authorization epochs, and the sweep of
//! expired session ids.

use crate::StoreError;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use std::collections::HashMap;
use uuid::Uuid;

use super::{SessionInfo, SessionStore};

impl SessionStore {
    /// Ends one session. Returns whether it existed.
    pub async fn revoke(&self, sid: Uuid) -> Result<bool, StoreError> {
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let key = self.session_key(sid);
        let user: Option<String> = conn.hget(&key, "user").await?;
        let removed: i64 = conn.del(&key).await?;
        let _: i64 = conn.del(self.retired_key(sid)).await?;
        if let Some(uid) = user.and_then(|u| Uuid::parse_str(&u).ok()) {
            let _: () = conn.srem(self.user_key(uid), sid.to_string()).await?;
        }
        Ok(removed == 1)
    }

    /// Ends every session of a user (deactivation, password change).
    pub async fn revoke_all_for_user(&self, user_id: Uuid) -> Result<usize, StoreError> {
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let ukey = self.user_key(user_id);
        let sids: Vec<String> = conn.smembers(&ukey).await?;
        if sids.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for sid in &sids {
            if let Ok(id) = Uuid::parse_str(sid) {
                pipe.del(self.session_key(id)).ignore();
                pipe.del(self.retired_key(id)).ignore();
            }
            // Only the ids read above: a session created meanwhile stays
            // listed, so a later revocation still finds it.
            pipe.srem(&ukey, sid).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(sids.len())
    }

    /// Ends the user's sessions that are in `tenant_id` (removal from one
    /// tenant must not log the user out of the others).
    pub async fn revoke_for_user_in_tenant(
        &self,
        user_id: Uuid,
        tenant_id: Uuid,
    ) -> Result<usize, StoreError> {
        let mut revoked = 0;
        for session in self.list_for_user(user_id).await? {
            if session.tenant_id == tenant_id && self.revoke(session.id).await? {
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// A user's live sessions; forgets the ids of expired ones.
    pub async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<SessionInfo>, StoreError> {
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let ukey = self.user_key(user_id);
        let sids: Vec<String> = conn.smembers(&ukey).await?;
        let mut out = Vec::new();
        for sid in sids {
            let Ok(id) = Uuid::parse_str(&sid) else {
                continue;
            };
            let map: HashMap<String, String> = conn.hgetall(self.session_key(id)).await?;
            if map.is_empty() {
                let _: () = conn.srem(&ukey, &sid).await?;
                continue;
            }
            let time = |k: &str| {
                map.get(k)
                    .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                    .map(|t| t.with_timezone(&Utc))
            };
            let text = |k: &str| map.get(k).filter(|v| !v.is_empty()).cloned();
            out.push(SessionInfo {
                id,
                tenant_id: map
                    .get("tenant")
                    .and_then(|t| Uuid::parse_str(t).ok())
                    .ok_or(StoreError::Corrupt("tenant"))?,
                created_at: time("created"),
                refreshed_at: time("refreshed"),
                ip: text("ip"),
                user_agent: text("ua"),
            });
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(out)
    }

    /// Whether `sid` belongs to `user_id` (for revoking one's own session).
    pub async fn owner_of(&self, sid: Uuid) -> Result<Option<Uuid>, StoreError> {
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let user: Option<String> = conn.hget(self.session_key(sid), "user").await?;
        Ok(user.and_then(|u| Uuid::parse_str(&u).ok()))
    }

    /// Marks every cached permission set of a tenant stale.
    pub async fn bump_authz_epoch(&self, tenant_id: Uuid) -> Result<i64, StoreError> {
        let mut conn = ferro_redis::connection(&self.pool).await?;
        Ok(conn.incr(self.authz_key(tenant_id), 1).await?)
    }

    /// The tenant's current authorization epoch.
    pub async fn authz_epoch(&self, tenant_id: Uuid) -> Result<i64, StoreError> {
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let epoch: Option<i64> = conn.get(self.authz_key(tenant_id)).await?;
        Ok(epoch.unwrap_or(0))
    }

    /// Drops ids of expired sessions from every user's session set; returns
    /// how many were dropped. Session hashes themselves expire in Redis.
    pub async fn cleanup_expired(&self) -> Result<usize, StoreError> {
        let mut conn = ferro_redis::connection(&self.pool).await?;
        let pattern = format!("{}user_sessions:*", self.prefix);
        let keys: Vec<String> = {
            let mut iter = conn.scan_match::<_, String>(&pattern).await?;
            let mut keys = Vec::new();
            while let Some(k) = futures_next(&mut iter).await {
                keys.push(k);
            }
            keys
        };
        let mut dropped = 0;
        for ukey in keys {
            let sids: Vec<String> = conn.smembers(&ukey).await?;
            for sid in sids {
                let Ok(id) = Uuid::parse_str(&sid) else {
                    continue;
                };
                let exists: bool = conn.exists(self.session_key(id)).await?;
                if !exists {
                    let _: () = conn.srem(&ukey, &sid).await?;
                    dropped += 1;
                }
            }
        }
        Ok(dropped)
    }
}

async fn futures_next<T>(iter: &mut redis::AsyncIter<'_, T>) -> Option<T>
where
    T: redis::FromRedisValue + Unpin + Send + 'static,
{
    iter.next_item().await.and_then(Result::ok)
}
