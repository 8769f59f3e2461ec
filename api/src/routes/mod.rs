//! The resources under `/api/v1`, one module each; each owns its router,
//! handlers and SQL.

pub mod devices;
pub mod docs;
pub mod health;
pub mod jobs;
pub mod logs;
pub mod monitor;
pub mod roles;
pub mod schedules;
pub mod tenants;
pub mod users;
