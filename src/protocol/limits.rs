//! Per-connection limits both protocol sessions enforce (issue 11): the bytes an open
//! transaction holds ([`TxCharge`]), and the refusal texts, so STOMP and JMS clients
//! read the same words.

use std::sync::Arc;

use crate::broker::Limits;
use crate::metrics::{Limit, LimitStats};

/// The memory an open transaction's buffered sends hold, reserved in the broker-wide
/// [`LimitStats`] (against the memory limit) and given back when the transaction ends,
/// whichever way: commit (the operations leave for their shards), rollback, error,
/// or the connection closing drops it.
#[derive(Debug, Default)]
pub struct TxCharge {
    stats: Option<Arc<LimitStats>>,
    bytes: u64,
}

/// Why a transactional send was refused; the transaction is rolled back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxRefusal {
    /// This transaction would exceed `maxTransactionSize`.
    TooLarge { limit: u64 },
    /// All open transactions together would exceed the memory limit.
    MemoryFull { limit: u64 },
}

impl TxRefusal {
    pub fn message(&self) -> String {
        match self {
            TxRefusal::TooLarge { limit } => format!(
                "Transaction too large: its messages would exceed maxTransactionSize \
                 ({limit} bytes); the transaction was rolled back"
            ),
            TxRefusal::MemoryFull { limit } => format!(
                "Usage Manager memory limit reached: open transactions would hold more \
                 than the memory limit ({limit} bytes); the transaction was rolled back"
            ),
        }
    }
}

impl TxCharge {
    /// Adds `bytes` (a message's memory size) if this transaction stays within
    /// `maxTransactionSize` and all of them within the memory limit.
    pub fn add(
        &mut self,
        stats: &Arc<LimitStats>,
        limits: &Limits,
        bytes: u64,
    ) -> Result<(), TxRefusal> {
        if self.bytes.saturating_add(bytes) > limits.max_transaction_bytes {
            stats.refused(Limit::TransactionSize);
            return Err(TxRefusal::TooLarge {
                limit: limits.max_transaction_bytes,
            });
        }
        if !stats.try_add_transaction_bytes(bytes, limits.transaction_memory_bytes) {
            stats.refused(Limit::TransactionMemory);
            return Err(TxRefusal::MemoryFull {
                limit: limits.transaction_memory_bytes,
            });
        }
        self.bytes += bytes;
        if self.stats.is_none() {
            self.stats = Some(stats.clone());
        }
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for TxCharge {
    fn drop(&mut self) {
        if let Some(stats) = &self.stats {
            stats.sub_transaction_bytes(self.bytes);
        }
    }
}

/// The refusal text of a per-connection count limit (`what`: "subscriptions").
pub fn count_refusal(what: &str, attribute: &str, limit: usize) -> String {
    format!("Too many {what} on this connection: the broker allows {limit} ({attribute})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_gives_its_bytes_back_when_dropped() {
        let stats = Arc::new(LimitStats::default());
        let limits = Limits {
            max_transaction_bytes: 100,
            transaction_memory_bytes: 150,
            ..Limits::default()
        };
        let mut a = TxCharge::default();
        a.add(&stats, &limits, 60).expect("within both limits");
        assert_eq!(
            a.add(&stats, &limits, 41),
            Err(TxRefusal::TooLarge { limit: 100 })
        );
        let mut b = TxCharge::default();
        b.add(&stats, &limits, 90).expect("within both limits");
        assert_eq!(
            b.add(&stats, &limits, 1),
            Err(TxRefusal::MemoryFull { limit: 150 })
        );
        assert_eq!(stats.transaction_bytes(), 150);
        drop(a);
        assert_eq!(stats.transaction_bytes(), 90);
        drop(b);
        assert_eq!(stats.transaction_bytes(), 0);
    }
}
