//! The failover transport's reconnect policy as pure functions: which broker to try in
//! which order, how long to wait between passes, when to give up. Kept apart from the
//! sockets so it is unit tested exactly.

use crate::uri::FailoverUri;

/// The order in which to try the URI list on one reconnect pass: as written when
/// `randomize=false` (so a master/slave pair always tries the master first), else a fresh
/// shuffle each pass, as ActiveMQ does.
pub fn connect_order(len: usize, randomize: bool, rng: &mut XorShift) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if randomize {
        // Fisher-Yates.
        for i in (1..len).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    order
}

/// Delay before the first retry pass, ms: `initialReconnectDelay`, capped by
/// `maxReconnectDelay`.
pub fn first_delay_ms(uri: &FailoverUri) -> u64 {
    uri.initial_reconnect_delay_ms
        .min(uri.max_reconnect_delay_ms)
}

/// Delay after `current_ms` for the next failed pass: multiplied by `backOffMultiplier`
/// when `useExponentialBackOff`, never above `maxReconnectDelay`.
pub fn next_delay_ms(current_ms: u64, uri: &FailoverUri) -> u64 {
    if !uri.use_exponential_backoff {
        return current_ms.min(uri.max_reconnect_delay_ms);
    }
    let grown = (current_ms as f64 * uri.backoff_multiplier).ceil();
    // `as` saturates on overflow; a 0 ms start is bumped to 1 so it can grow at all.
    let grown = (grown as u64).max(1);
    grown.min(uri.max_reconnect_delay_ms)
}

/// True when `failed_passes` full passes over the list have failed and the policy says
/// stop. `maxReconnectAttempts`: -1 never stops; 0 means "do not reconnect", which for
/// the first connect still allows one pass (as ActiveMQ: the limit counts retries after
/// the first failure, and a failed pass counts one).
pub fn exhausted(failed_passes: u64, max_reconnect_attempts: i64) -> bool {
    match max_reconnect_attempts {
        n if n < 0 => false,
        0 => failed_passes >= 1,
        n => failed_passes >= n as u64,
    }
}

/// A tiny xorshift64 generator: enough to shuffle a URI list, no dependency.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// Seeded from the clock and a stack address so two clients started together differ.
    pub fn from_time() -> XorShift {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let local = 0u8;
        let addr = &local as *const u8 as u64;
        XorShift::new(nanos ^ addr.rotate_left(32))
    }

    /// A generator from `seed` (0 is replaced: xorshift would stay at 0 forever).
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> FailoverUri {
        FailoverUri::parse(text).expect("parse")
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let u =
            uri("failover:(stomp://127.0.0.1:1)?initialReconnectDelay=10&maxReconnectDelay=100");
        let mut d = first_delay_ms(&u);
        let mut seen = vec![d];
        for _ in 0..6 {
            d = next_delay_ms(d, &u);
            seen.push(d);
        }
        assert_eq!(seen, vec![10, 20, 40, 80, 100, 100, 100]);
    }

    #[test]
    fn backoff_variants() {
        let flat = uri(
            "failover:(stomp://127.0.0.1:1)?initialReconnectDelay=50&useExponentialBackOff=false",
        );
        assert_eq!(next_delay_ms(first_delay_ms(&flat), &flat), 50);
        let mult =
            uri("failover:(stomp://127.0.0.1:1)?initialReconnectDelay=10&backOffMultiplier=1.5");
        assert_eq!(next_delay_ms(10, &mult), 15);
        assert_eq!(next_delay_ms(15, &mult), 23);
        let capped =
            uri("failover:(stomp://127.0.0.1:1)?initialReconnectDelay=500&maxReconnectDelay=200");
        assert_eq!(first_delay_ms(&capped), 200);
        let zero = uri("failover:(stomp://127.0.0.1:1)?initialReconnectDelay=0");
        assert_eq!(next_delay_ms(0, &zero), 1, "a 0 ms start must still grow");
        assert_eq!(
            next_delay_ms(u64::MAX / 2, &uri("failover:(stomp://127.0.0.1:1)")),
            30_000
        );
    }

    #[test]
    fn attempts_limit() {
        assert!(!exhausted(1_000_000, -1));
        assert!(!exhausted(0, 0));
        assert!(exhausted(1, 0));
        assert!(!exhausted(2, 3));
        assert!(exhausted(3, 3));
    }

    #[test]
    fn order_is_as_written_without_randomize() {
        let mut rng = XorShift::new(7);
        for _ in 0..10 {
            assert_eq!(connect_order(4, false, &mut rng), vec![0, 1, 2, 3]);
        }
        assert_eq!(connect_order(0, true, &mut rng), Vec::<usize>::new());
        assert_eq!(connect_order(1, true, &mut rng), vec![0]);
    }

    #[test]
    fn randomize_gives_permutations_and_varies() {
        let mut rng = XorShift::new(42);
        let mut firsts = [0u32; 3];
        for _ in 0..300 {
            let mut o = connect_order(3, true, &mut rng);
            firsts[o[0]] += 1;
            o.sort_unstable();
            assert_eq!(o, vec![0, 1, 2]);
        }
        // Each broker comes first roughly a third of the time.
        assert!(firsts.iter().all(|&n| n > 50), "{firsts:?}");
    }
}
