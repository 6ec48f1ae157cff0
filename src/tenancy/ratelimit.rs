//! Sign-in and sign-up throttling (issue 13): a GCRA (generic cell rate algorithm) per
//! client IP and per email, kept in Redis so every API replica shares it. One Lua script on
//! Redis's clock: the bucket's theoretical arrival time (TAT, µs) moves one emission interval
//! (60 s / rate, in µs so that rates above 60,000 a minute keep an interval above 0) per
//! request, and a request is refused while the TAT is more than a minute's burst ahead of
//! now. Refusals are `429 Too Many Requests` problems with `Retry-After`.

use fred::prelude::*;

use crate::redis::Keys;

/// `KEYS[1]` the bucket's TAT (µs since the epoch: ~2^51, exact in Lua's doubles);
/// `ARGV[1]` emission interval (µs, at least 1), `ARGV[2]` burst tolerance (µs). Returns 0
/// when allowed (the TAT advanced), else the µs to wait. The key expires (ms, rounded up)
/// when its TAT is reached.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return 0";

/// A GCRA cell: the emission interval and the burst tolerance, both µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub interval_us: u64,
    pub tolerance_us: u64,
}

impl Cell {
    /// `per_minute` (> 0): a burst of `per_minute`, then `per_minute` a minute; the interval
    /// is never 0 (at 1 µs, above 60,000,000 a minute, the burst is `per_minute` µs long).
    pub fn per_minute(per_minute: u32) -> Self {
        let interval_us = (60_000_000 / u64::from(per_minute.max(1))).max(1);
        Self {
            interval_us,
            tolerance_us: interval_us * u64::from(per_minute.saturating_sub(1)),
        }
    }
}

/// Counts one request of `subject` in `bucket` at `per_minute` (a burst of that many, then
/// that many a minute). `Ok(None)` when allowed, `Ok(Some(wait))` when refused; `per_minute`
/// 0 disables the limit. Errors: Redis unreachable or refusing the script.
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
    count(redis, &key(keys, bucket, subject), Cell::per_minute(per_minute)).await
}

/// The bucket's key: `ratelimit:us:<bucket>:<subject>` (`us`: its TAT is in µs; the ms TATs
/// of earlier releases lived at `ratelimit:<bucket>:<subject>`, which neither reads the
/// other's values during a rolling deploy).
pub fn key(keys: &Keys, bucket: &str, subject: &str) -> String {
    keys.key(&["ratelimit", "us", bucket, subject])
}

/// Counts one request in the bucket at `key` by `cell` (the GCRA script, on Redis's clock).
/// `Ok(None)` when allowed, `Ok(Some(wait))` (µs resolution) when refused.
pub async fn count(redis: &Client, key: &str, cell: Cell) -> Result<Option<std::time::Duration>, Error> {
    let wait: i64 = redis
        .eval(
            GCRA,
            vec![key.to_owned()],
            vec![cell.interval_us.to_string(), cell.tolerance_us.to_string()],
        )
        .await?;
    Ok((wait > 0).then(|| std::time::Duration::from_micros(wait as u64)))
}

#[cfg(test)]
mod tests {
    use super::Cell;

    #[test]
    fn the_emission_interval_is_exact_in_microseconds_and_never_zero() {
        let cell = |n| {
            let c = Cell::per_minute(n);
            (c.interval_us, c.tolerance_us)
        };
        assert_eq!(cell(1), (60_000_000, 0));
        assert_eq!(cell(6), (10_000_000, 50_000_000));
        assert_eq!(cell(7), (8_571_428, 51_428_568));
        assert_eq!(cell(100_000), (600, 59_999_400));
        assert_eq!(cell(u32::MAX).0, 1);
    }
}
