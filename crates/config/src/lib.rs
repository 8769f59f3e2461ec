//! Typed configuration for every Ferrostack binary.
//!
//! Values come from the process environment, after `.env` (if present) has
//! been loaded into it. Each binary assembles the sections it needs
//! (`DatabaseConfig`, `RedisConfig`, ...) from one [`Env`] snapshot. A missing
//! or malformed value is a [`ConfigError`] whose `Display` is one line naming
//! the variable and what was expected; the value itself is never echoed, so a
//! mistyped secret cannot leak into logs. Secret-bearing fields use
//! [`secrecy::SecretString`] or [`SecretUrl`], whose `Debug` output is redacted.

mod env;
mod secret_url;
mod sections;

pub use env::{ConfigError, Env};
pub use secrecy::{ExposeSecret, SecretString};
pub use secret_url::SecretUrl;
pub use sections::*;
