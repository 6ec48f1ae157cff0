//! Sign-in and sign-up throttling (issue 13): a GCRA (generic cell rate algorithm) per
//! client IP and per email, kept in Redis so every API replica shares it. One Lua script on
//! Redis's clock: the bucket's theoretical arrival time (TAT) moves one emission interval
//! (60 s / rate) per request, and a request is refused while the TAT is more than a minute's
//! burst ahead of now. Refusals are `429 Too Many Requests` problems with `Retry-After`.

use fred::prelude::*;

use crate::redis::Keys;

/// `KEYS[1]` the bucket's TAT (ms); `ARGV[1]` emission interval (ms), `ARGV[2]` burst
/// tolerance (ms). Returns 0 when allowed (the TAT advanced), else the ms to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return 0";

/// Counts one request of `subject` in `bucket` at `per_minute` (a burst of that many, then
/// that many a minute). `Ok(None)` when allowed, `Ok(Some(wait))` when refused; `per_minute`
/// 0 disables the limit.
pub async fn hit(
    redis: &Client,
    keys: &Keys,
    bucket: &str,
    subject: &str,
    per_minute: u32,
) -> Result<Option<std::time::Duration>, Error> {
    if per_minute == 0 {
        return Ok(None);
    }
    let interval = 60_000 / u64::from(per_minute).max(1);
    let tolerance = interval * u64::from(per_minute.saturating_sub(1));
    let key = keys.key(&["ratelimit", bucket, subject]);
    let wait: i64 = redis
        .eval(GCRA, vec![key], vec![interval.to_string(), tolerance.to_string()])
        .await?;
    Ok((wait > 0).then(|| std::time::Duration::from_millis(wait as u64)))
}
