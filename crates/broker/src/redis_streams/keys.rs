//! The keys of one prefix's streams, the Lua scripts that move entries
//! between them atomically, and the small helpers every part uses.

use crate::delivery::BrokerError;
use ferro_redis::{Connection, RedisPool};
use redis::streams::StreamId;
use std::time::Duration;

pub(super) const GROUP: &str = "workers";
pub(super) const FIELD: &str = "envelope";
pub(super) const REDELIVERED: &str = "redelivered";
/// How long one `XREADGROUP` blocks waiting for entries; also bounds how
/// late a due delayed retry is moved into the stream.
pub(super) const BLOCK: Duration = Duration::from_millis(500);
pub(super) const DEAD_LETTERS_KEPT: usize = 100_000;
/// How long a read waits for more entries while they trickle in: when the
/// last read took all there was (and not nothing), the next one waits this
/// long after it. Jobs then reach the worker in small batches whose claims,
/// commits, acks and events are shared, instead of each paying for its own
/// read, wake-ups and round trips; an idle consumer's first entry and a
/// backlog are not held up. Side by side on the jobs benchmark's end to end
/// (BENCHMARKS.md), 5 ms took the worker's own CPU from about 100 to 60 µs
/// a job. (RabbitMQ pushes deliveries, so there is no read to save; the
/// same wait there slowed the drain by 8%.)
pub(super) const READ_LINGER: Duration = Duration::from_millis(5);

#[derive(Clone)]
pub(super) struct Keys {
    pub(super) stream: String,
    pub(super) dead: String,
    pub(super) delayed: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            stream: format!("{prefix}:jobs"),
            dead: format!("{prefix}:jobs:dead"),
            delayed: format!("{prefix}:jobs:delayed"),
        }
    }
}

/// Adds ARGV[2] to the delayed set, due ARGV[1] ms from now by Redis's clock.
pub(super) const DELAY_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
";

/// Moves up to ARGV[1] due members of the delayed set (KEYS[1]) to the stream (KEYS[2]).
pub(super) const PROMOTE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'envelope', member)
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return #due
";

/// The Lua function both hand-back scripts share: entry `id` of `stream` is
/// copied to the end of the stream, marked redelivered, then acknowledged
/// and deleted, all at once.
macro_rules! hand_back_function {
    () => {
        r"
local function hand_back(stream, group, id)
  local found = redis.call('XRANGE', stream, id, id)
  if #found > 0 then
    local fields = found[1][2]
    for j = 1, #fields, 2 do
      if fields[j] == 'envelope' then
        redis.call('XADD', stream, '*', 'envelope', fields[j + 1], 'redelivered', '1')
      end
    end
  end
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
end
"
    };
}

/// Hands entries ARGV[2..] of stream KEYS[1] back to group ARGV[1].
pub(super) const HAND_BACK_SCRIPT: &str = concat!(
    hand_back_function!(),
    r"
for i = 2, #ARGV do
  hand_back(KEYS[1], ARGV[1], ARGV[i])
end
return #ARGV - 1
"
);

/// A consumer's leaving: every entry Redis holds as pending for consumer
/// ARGV[2] of group ARGV[1] on stream KEYS[1] is handed back, then the
/// consumer is deleted; returns how many entries were handed back. Redis's
/// own list is the one that counts, not the consumer's: a read whose answer
/// never reached the worker (its shutdown dropped the read midway) still
/// left its entries pending here, and deleting a consumer with pending
/// entries would leave them to nobody.
pub(super) const CLOSE_SCRIPT: &str = concat!(
    hand_back_function!(),
    r"
local handed = 0
while true do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000, ARGV[2])
  if #pending == 0 then
    break
  end
  for _, entry in ipairs(pending) do
    hand_back(KEYS[1], ARGV[1], entry[1])
    handed = handed + 1
  end
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return handed
"
);

pub(super) fn unavailable(err: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(err.to_string())
}

pub(super) async fn connection(pool: &RedisPool) -> Result<Connection, BrokerError> {
    ferro_redis::connection(pool).await.map_err(unavailable)
}

pub(super) fn payload(entry: &StreamId) -> Vec<u8> {
    entry.get::<Vec<u8>>(FIELD).unwrap_or_default()
}
