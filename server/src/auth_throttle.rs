//! Slows down token guessing: failed authentications are counted per client address, and an
//! address with too many in a short while is refused outright for a while. Other addresses are
//! unaffected. Time is passed in (tests drive it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures allowed from one address within `WINDOW` before it is blocked: enough for a person
/// mistyping a token a few times, nowhere near enough to guess one.
const MAX_FAILURES: u32 = 20;
const WINDOW: Duration = Duration::from_secs(60);
/// How long a blocked address is refused, whatever it sends.
pub const BLOCK: Duration = Duration::from_secs(300);
/// Addresses tracked at most: a flood from many addresses cannot grow the table without bound.
/// When full, stale entries go first; if every entry is live, a new address is not tracked.
const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

/// Failed authentications per client address (IPv6: per /64, what one client usually holds).
#[derive(Debug, Default)]
pub struct AuthThrottle {
    by_addr: HashMap<IpAddr, Entry>,
    /// Failed authentications (wrong or missing token), in total.
    pub failures: u64,
    /// Requests refused because their address was blocked.
    pub refused: u64,
}

fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

impl AuthThrottle {
    /// Whether `ip` is blocked now (then the request is refused without looking at its token,
    /// and counted).
    pub fn blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        let blocked = self
            .by_addr
            .get(&key(ip))
            .and_then(|e| e.blocked_until)
            .is_some_and(|until| now < until);
        if blocked {
            self.refused += 1;
        }
        blocked
    }

    /// `ip` failed to authenticate; logs once per burst, when the address gets blocked.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        self.failures += 1;
        let k = key(ip);
        if !self.by_addr.contains_key(&k) && self.by_addr.len() >= MAX_TRACKED {
            self.prune(now);
            if self.by_addr.len() >= MAX_TRACKED {
                return;
            }
        }
        let e = self.by_addr.entry(k).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
        });
        if now.saturating_duration_since(e.window_start) > WINDOW
            || e.blocked_until.is_some_and(|until| now >= until)
        {
            *e = Entry {
                window_start: now,
                failures: 0,
                blocked_until: None,
            };
        }
        e.failures += 1;
        if e.failures == MAX_FAILURES {
            e.blocked_until = Some(now + BLOCK);
            tracing::warn!(
                client = %k,
                "{MAX_FAILURES} failed authentications within {}s: refusing this client for {}s",
                WINDOW.as_secs(),
                BLOCK.as_secs()
            );
        }
    }

    /// Drops entries that no longer count: window over and not blocked.
    fn prune(&mut self, now: Instant) {
        self.by_addr.retain(|_, e| match e.blocked_until {
            Some(until) => now < until,
            None => now.saturating_duration_since(e.window_start) <= WINDOW,
        });
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_blocked_after_a_burst_of_failures_and_only_that_one() {
        let mut t = AuthThrottle::default();
        let now = Instant::now();
        let (bad, good) = (ip("192.0.2.7"), ip("192.0.2.8"));
        for i in 0..MAX_FAILURES {
            assert!(!t.blocked(bad, now), "failure {i} is not blocked yet");
            t.failed(bad, now);
        }
        assert!(t.blocked(bad, now));
        assert!(!t.blocked(good, now), "another address is unaffected");
        assert!(t.blocked(bad, now + BLOCK - Duration::from_secs(1)));
        assert!(!t.blocked(bad, now + BLOCK), "the block ends");
        assert_eq!((t.failures, t.refused), (u64::from(MAX_FAILURES), 2));
    }

    #[test]
    fn failures_spread_over_time_never_block() {
        let mut t = AuthThrottle::default();
        let mut now = Instant::now();
        for _ in 0..100 {
            t.failed(ip("192.0.2.7"), now);
            now += WINDOW / 5; // five per window: under the limit
            assert!(!t.blocked(ip("192.0.2.7"), now));
        }
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let mut t = AuthThrottle::default();
        let now = Instant::now();
        for i in 0..MAX_FAILURES {
            t.failed(ip(&format!("2001:db8:0:1::{i:x}")), now);
        }
        assert!(t.blocked(ip("2001:db8:0:1::ffff"), now), "same /64");
        assert!(!t.blocked(ip("2001:db8:0:2::1"), now), "another /64");
        for _ in 0..MAX_FAILURES {
            t.failed(ip("::ffff:198.51.100.1"), now);
        }
        assert!(t.blocked(ip("198.51.100.1"), now));
    }

    #[test]
    fn the_table_is_bounded_and_stale_entries_make_room() {
        let mut t = AuthThrottle::default();
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            t.failed(IpAddr::V4(i.into()), now);
        }
        assert_eq!(t.tracked(), MAX_TRACKED);
        let later = now + WINDOW + Duration::from_secs(1);
        t.failed(ip("203.0.113.9"), later);
        assert_eq!(t.tracked(), 1, "stale entries pruned for the new one");
    }
}
