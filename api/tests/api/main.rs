//! The api's tests against the real services (PostgreSQL, Redis, RabbitMQ,
//! nginx, snmpd, Chromium), one module per subject, linked into one binary.
//! Each test starts its own api (`support::TestApp`) over its own database,
//! Redis key prefix and broker names, so they run in parallel.

mod support;

mod access;
mod binary;
mod broker_outage;
mod browser;
mod conformance;
mod deferred;
mod disconnects;
mod docs;
mod events;
mod files;
mod jobs;
mod login;
mod metrics;
mod mibs;
mod monitor;
mod monitor_page;
mod nginx;
mod operations;
mod permissions;
mod queue_control;
mod queues;
mod rate_limits;
mod requests;
mod resources;
mod retention;
mod schedules;
mod sessions;
mod tenancy;
mod unique;
mod workflows;
