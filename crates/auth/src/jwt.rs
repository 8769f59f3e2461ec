//! HS256 access tokens. Only HS256 is accepted: `alg: none`, other
//! algorithms, bad signatures, wrong issuer or audience and expired tokens
//! are all rejected by [`JwtKeys::decode`].

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const ISSUER: &str = "ferrostack";
pub const AUDIENCE: &str = "ferrostack-api";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: Uuid,
    /// The tenant the token acts in.
    pub tid: Uuid,
    /// The session (in Redis) the token belongs to.
    pub sid: Uuid,
    /// This token's own id.
    pub jti: Uuid,
    /// The session's tenant generation when the token was issued: every
    /// switch of tenant moves it, so a token from before a switch stays void
    /// even after the session switches back. Absent (0) in tokens issued by
    /// older versions, as in sessions that never switched.
    #[serde(rename = "gen", default)]
    pub generation: u32,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime_secs: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
}

impl JwtKeys {
    pub fn new(secret: &[u8], lifetime_secs: i64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime_secs,
        }
    }

    pub fn lifetime_secs(&self) -> i64 {
        self.lifetime_secs
    }

    /// A fresh access token for `user` in `tenant` within `session`, at the
    /// session's tenant `generation`.
    pub fn issue(&self, user: Uuid, tenant: Uuid, session: Uuid, generation: u32) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            tid: tenant,
            sid: session,
            jti: Uuid::new_v4(),
            generation,
            iat: now,
            exp: now + self.lifetime_secs,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding with a secret key cannot fail")
    }

    pub fn decode(&self, token: &str) -> Result<Claims, JwtError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => JwtError::Expired,
                _ => JwtError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        // URL-safe base64 without padding, enough for hand-made tokens.
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in s.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn round_trip() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 60);
        let (u, t, s) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let claims = keys.decode(&keys.issue(u, t, s, 3)).unwrap();
        assert_eq!((claims.sub, claims.tid, claims.sid), (u, t, s));
        assert_eq!(claims.generation, 3);
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn rejects_other_keys_algorithms_none_and_expired() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 60);
        let other = JwtKeys::new(b"another-secret-another-secret-xx", 60);
        let token = other.issue(Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), 0);
        assert!(matches!(keys.decode(&token), Err(JwtError::Invalid)));

        let payload = token.split('.').nth(1).unwrap().to_owned();
        let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), payload);
        assert!(matches!(keys.decode(&none), Err(JwtError::Invalid)));
        let hs512 = format!(
            "{}.{}.{}",
            b64(br#"{"alg":"HS512","typ":"JWT"}"#),
            payload,
            "sig"
        );
        assert!(matches!(keys.decode(&hs512), Err(JwtError::Invalid)));

        let expired = JwtKeys::new(b"0123456789abcdef0123456789abcdef", -120);
        let token = expired.issue(Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), 0);
        assert!(matches!(keys.decode(&token), Err(JwtError::Expired)));
        assert!(matches!(keys.decode("garbage"), Err(JwtError::Invalid)));
    }
}
