//! Failed credentials, rate limited per client address.
//!
//! Every failed credential spends one cell of the client's budget (a GCRA
//! bucket from `governor`, refilled at `per_minute`). Once a failure finds the
//! budget spent, the client is refused without any signature check until the
//! bucket would admit the next failure; that verdict is remembered so the
//! check before verification needs no cell. A credential already verified
//! and cached never reaches this limiter, so an honest client holding a good
//! token is never refused, whatever its neighbours behind the same address
//! do.
//!
//! IPv6 clients are keyed by their /64 (one host can hold the whole prefix).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Clients remembered as over budget; beyond this, expired entries go first.
const MAX_BLOCKED: usize = 100_000;
/// Keys kept by the buckets before idle ones are dropped.
const MAX_TRACKED: usize = 100_000;

pub struct FailureLimiter {
    buckets: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

/// The address a budget belongs to: IPv4 as is, IPv6 by its /64.
fn key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

impl FailureLimiter {
    /// `None` when `per_minute` is 0 (limiting off).
    pub fn new(per_minute: u32) -> Option<Self> {
        let per_minute = NonZeroU32::new(per_minute)?;
        Some(Self { buckets: RateLimiter::keyed(Quota::per_minute(per_minute)), blocked: Mutex::default() })
    }

    /// `Err(wait)` while `client` has spent its budget of failures.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        let key = key(client);
        match blocked.get(&key) {
            Some(until) if *until > Instant::now() => Err(until.saturating_duration_since(Instant::now())),
            Some(_) => {
                blocked.remove(&key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts one failed credential of `client`.
    pub fn failed(&self, client: IpAddr) {
        let key = key(client);
        let Err(not_until) = self.buckets.check_key(&key) else { return };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        if blocked.len() >= MAX_BLOCKED {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
        }
        blocked.insert(key, Instant::now() + wait.max(Duration::from_millis(1)));
        drop(blocked);
        if self.buckets.len() > MAX_TRACKED {
            self.buckets.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_refuses_until_it_refills_and_per_address() {
        let limiter = FailureLimiter::new(3).unwrap();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
            limiter.failed(a);
        }
        assert!(limiter.check(a).is_ok(), "three failures are within the budget");
        limiter.failed(a);
        let wait = limiter.check(a).unwrap_err();
        assert!(wait > Duration::from_secs(10) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limiter.check(b).is_ok(), "another address has its own budget");
        assert!(FailureLimiter::new(0).is_none(), "0 turns limiting off");
    }

    #[test]
    fn ipv6_hosts_share_their_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(key(one), key(other));
        assert_ne!(key(one), key("2001:db8:1:3::1".parse().unwrap()));
    }
}
