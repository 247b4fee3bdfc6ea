//! The failover transport's reconnect policy: which broker to try in which order, how
//! long to wait between passes, when to give up, and [`connect_loop`], the loop both
//! clients (STOMP and OpenWire) run with it. Kept apart from the sockets (the loop
//! takes the connect attempt and the pause as closures) so it is unit tested exactly.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::{lock, ClientError};
use crate::uri::{FailoverUri, TransportUri};

/// What a client does once its connection is lost (and it was not closed): a plain URL
/// fails with [`ClientError::ConnectionLost`], `maxReconnectAttempts=0` gives up at
/// once, otherwise `reconnect` (typically [`connect_loop`]) decides.
pub fn after_loss<T>(
    uri: &FailoverUri,
    failover: bool,
    reason: String,
    reconnect: impl FnOnce() -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    if !failover {
        Err(ClientError::ConnectionLost(reason))
    } else if uri.max_reconnect_attempts == 0 {
        Err(ClientError::FailoverExhausted {
            attempts: 0,
            last_error: reason,
        })
    } else {
        reconnect()
    }
}

/// Sleeps `delay` on `changed` unless `closed(state)` says the client was closed,
/// waking early when it is (close() notifies the condvar): the pause for
/// [`connect_loop`].
pub fn pause_unless_closed<S>(
    state: &Mutex<S>,
    changed: &Condvar,
    delay: Duration,
    closed: impl Fn(&S) -> bool,
) {
    let st = lock(state);
    let _ = changed
        .wait_timeout_while(st, delay, |s| !closed(s))
        .unwrap_or_else(|e| e.into_inner());
}

/// What one connect attempt to one broker of the list gave.
pub enum Attempt<T> {
    Connected(T),
    /// The broker turned the client away (e.g. bad credentials): final for a plain URL,
    /// one more failed attempt under `failover:`.
    Refused(String),
    Failed(String),
    /// The client was closed meanwhile.
    Closed,
}

/// Passes over the URI list (in [`connect_order`]) calling `attempt` on each broker,
/// with `pause` between failed passes (backing off as the URI says), until one
/// connects, the policy gives up, or the client is closed. Without `failover` (a plain
/// URL) one failed pass ends it. `pause` should return early when the client is closed
/// (the next `attempt` then says [`Attempt::Closed`]).
pub fn connect_loop<T>(
    uri: &FailoverUri,
    failover: bool,
    mut attempt: impl FnMut(&TransportUri) -> Attempt<T>,
    mut pause: impl FnMut(Duration),
) -> Result<T, ClientError> {
    let mut rng = XorShift::from_time();
    let mut delay_ms = first_delay_ms(uri);
    let mut failed_passes: u64 = 0;
    let mut last_error = String::new();
    loop {
        for i in connect_order(uri.uris.len(), uri.randomize, &mut rng) {
            let target = &uri.uris[i];
            match attempt(target) {
                Attempt::Connected(t) => {
                    tracing::info!("connected to {target}");
                    return Ok(t);
                }
                Attempt::Refused(reason) if !failover => return Err(ClientError::Refused(reason)),
                Attempt::Refused(reason) | Attempt::Failed(reason) => last_error = reason,
                Attempt::Closed => return Err(ClientError::Closed),
            }
        }
        failed_passes += 1;
        if !failover {
            return Err(ClientError::Connect {
                addr: uri.uris[0].to_string(),
                reason: last_error,
            });
        }
        if exhausted(failed_passes, uri.max_reconnect_attempts) {
            return Err(ClientError::FailoverExhausted {
                attempts: failed_passes,
                last_error,
            });
        }
        tracing::debug!(
            "reconnect pass {failed_passes} failed ({last_error}); next in {delay_ms} ms"
        );
        pause(Duration::from_millis(delay_ms));
        delay_ms = next_delay_ms(delay_ms, uri);
    }
}

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

    /// Runs `connect_loop` over `text` with scripted attempts: `outcome(n, uri)` for
    /// the n-th attempt (0-based). Returns the result, the ports tried and the pauses.
    fn scripted(
        text: &str,
        failover: bool,
        outcome: impl Fn(usize, &TransportUri) -> Attempt<u16>,
    ) -> (Result<u16, ClientError>, Vec<u16>, Vec<u64>) {
        let u = uri(text);
        let mut tried = Vec::new();
        let mut pauses = Vec::new();
        let result = connect_loop(
            &u,
            failover,
            |t| {
                tried.push(t.addr.port());
                outcome(tried.len() - 1, t)
            },
            |d| pauses.push(d.as_millis() as u64),
        );
        (result, tried, pauses)
    }

    #[test]
    fn connect_loop_passes_in_order_and_backs_off() {
        let (result, tried, pauses) = scripted(
            "failover:(tcp://127.0.0.1:1,tcp://127.0.0.1:2)?randomize=false&initialReconnectDelay=10",
            true,
            |n, t| match n {
                5 => Attempt::Connected(t.addr.port()),
                _ => Attempt::Failed(format!("attempt {n}")),
            },
        );
        assert!(matches!(result, Ok(2)), "{result:?}");
        assert_eq!(tried, vec![1, 2, 1, 2, 1, 2]);
        assert_eq!(pauses, vec![10, 20]);
    }

    #[test]
    fn connect_loop_gives_up_after_max_reconnect_attempts() {
        let (result, tried, pauses) = scripted(
            "failover:(tcp://127.0.0.1:1)?maxReconnectAttempts=3&initialReconnectDelay=5",
            true,
            |_, _| Attempt::Refused("bad credentials".into()),
        );
        match result {
            Err(ClientError::FailoverExhausted {
                attempts: 3,
                last_error,
            }) => assert_eq!(last_error, "bad credentials"),
            other => panic!("{other:?}"),
        }
        assert_eq!(tried.len(), 3);
        assert_eq!(pauses, vec![5, 10]);
    }

    #[test]
    fn connect_loop_without_failover_stops_after_one_pass() {
        let (result, _, pauses) = scripted("tcp://127.0.0.1:1", false, |_, _| {
            Attempt::Refused("no".into())
        });
        assert!(
            matches!(result, Err(ClientError::Refused(ref r)) if r == "no"),
            "{result:?}"
        );
        assert!(pauses.is_empty());
        let (result, _, _) = scripted("tcp://127.0.0.1:1", false, |_, _| {
            Attempt::Failed("connection refused".into())
        });
        assert!(
            matches!(result, Err(ClientError::Connect { .. })),
            "{result:?}"
        );
        let (result, tried, _) =
            scripted("failover:(tcp://127.0.0.1:1)", true, |_, _| Attempt::Closed);
        assert!(matches!(result, Err(ClientError::Closed)), "{result:?}");
        assert_eq!(tried.len(), 1);
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
