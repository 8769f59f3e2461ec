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

/// Streams per queue: one per priority, 0 to 9.
pub(super) const PRIORITIES: usize = ferro_tasks::queues::MAX_PRIORITY as usize + 1;

/// The stream of `priority` in job queue `queue`.
pub(super) fn stream_key(prefix: &str, queue: &str, priority: u8) -> String {
    format!(
        "{prefix}:q:{queue}:{}",
        (priority as usize).min(PRIORITIES - 1)
    )
}

/// The delayed set of job queue `queue`.
pub(super) fn delayed_key(prefix: &str, queue: &str) -> String {
    format!("{prefix}:q:{queue}:delayed")
}

pub(super) fn dead_key(prefix: &str) -> String {
    format!("{prefix}:jobs:dead")
}

/// The keys of one job queue.
#[derive(Clone)]
pub(super) struct Keys {
    /// Its streams, by priority (index 0 holds priority 0).
    pub(super) streams: Vec<String>,
    pub(super) dead: String,
    pub(super) delayed: String,
}

impl Keys {
    pub(super) fn new(prefix: &str, queue: &str) -> Self {
        Self {
            streams: (0..PRIORITIES as u8)
                .map(|p| stream_key(prefix, queue, p))
                .collect(),
            dead: dead_key(prefix),
            delayed: delayed_key(prefix, queue),
        }
    }

    pub(super) fn stream(&self, priority: u8) -> &str {
        &self.streams[(priority as usize).min(PRIORITIES - 1)]
    }

    /// The priority of stream `key`, if it is one of this queue's.
    pub(super) fn priority_of(&self, key: &str) -> Option<u8> {
        self.streams.iter().position(|s| s == key).map(|p| p as u8)
    }

    /// The streams, highest priority first.
    pub(super) fn by_priority(&self) -> impl Iterator<Item = &String> {
        self.streams.iter().rev()
    }
}

/// Creates group ARGV[1] on every stream of KEYS (with the stream), at the
/// start of the stream; a group that exists is left alone.
pub(super) const GROUPS_SCRIPT: &str = r"
for _, key in ipairs(KEYS) do
  local ok = redis.pcall('XGROUP', 'CREATE', key, ARGV[1], '0', 'MKSTREAM')
  if type(ok) == 'table' and ok.err and not string.find(ok.err, 'BUSYGROUP') then
    return redis.error_reply(ok.err)
  end
end
return #KEYS
";

/// Adds ARGV[2] to the delayed set KEYS[1], due ARGV[1] ms from now by
/// Redis's clock. A member is its priority's digit, then the envelope.
pub(super) const DELAY_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
";

/// Moves up to ARGV[1] due members of the delayed set (KEYS[1]) to the
/// stream of their priority (KEYS[2] holds priority 0, KEYS[11] 9).
pub(super) const PROMOTE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local priority = tonumber(string.sub(member, 1, 1)) or 0
  redis.call('XADD', KEYS[priority + 2], '*', 'envelope', string.sub(member, 2))
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return #due
";

/// Reads up to ARGV[3] new entries for consumer ARGV[2] of group ARGV[1]
/// from the streams of KEYS in order (highest priority first), taking from
/// a stream only while the ones before it have none left: one round trip
/// whose answer is shaped like `XREADGROUP`'s.
pub(super) const READ_SCRIPT: &str = r"
local left = tonumber(ARGV[3])
local out = {}
for _, key in ipairs(KEYS) do
  if left <= 0 then
    break
  end
  local got = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', left, 'STREAMS', key, '>')
  if got then
    table.insert(out, got[1])
    left = left - #got[1][2]
  end
end
return out
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
/// ARGV[2] of group ARGV[1] on each stream of KEYS is handed back, then the
/// consumer is deleted; returns how many entries were handed back. Redis's
/// own list is the one that counts, not the consumer's: a read whose answer
/// never reached the worker (its shutdown dropped the read midway) still
/// left its entries pending here, and deleting a consumer with pending
/// entries would leave them to nobody.
pub(super) const CLOSE_SCRIPT: &str = concat!(
    hand_back_function!(),
    r"
local handed = 0
for _, stream in ipairs(KEYS) do
  while true do
    local pending = redis.call('XPENDING', stream, ARGV[1], '-', '+', 1000, ARGV[2])
    if #pending == 0 then
      break
    end
    for _, entry in ipairs(pending) do
      hand_back(stream, ARGV[1], entry[1])
      handed = handed + 1
    end
  end
  redis.call('XGROUP', 'DELCONSUMER', stream, ARGV[1], ARGV[2])
end
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
