//! The journal sink adapter: lets the synchronous [`ShardCore`] journal records through
//! the store's [`Journal`](crate::store::Journal) (via [`JournalSink`]). The core names
//! journal places with the store's own types ([`Location`], [`Position`]): `broker ->
//! store` is an allowed import, so there is no broker-side copy to convert.
//! Also feeds journal records (recovered or shipped) back into the core.

use bytes::Bytes;

use crate::store::{Location, Position};

use super::Shared;
use crate::broker::core::{JournalSink, ShardCore};
use crate::broker::ops::BrokerError;
use crate::broker::record::Record;

pub(super) struct Sink<'a>(pub(super) &'a Shared);

impl JournalSink for Sink<'_> {
    fn append(&mut self, payload: &[u8]) -> Result<(Location, Position), BrokerError> {
        let a = self.0.journal.append(payload).map_err(BrokerError::from)?;
        Ok((a.location, a.end))
    }
    fn end(&self) -> Position {
        self.0.journal.appended_position()
    }
    fn paused(&self) -> Option<String> {
        let shared = self.0;
        if let Some(why) = shared.journal.disk_full() {
            return Some(why);
        }
        if let Some(why) = shared.limit_stats.disk_full() {
            return Some(why);
        }
        let limit = shared.settings.limits.store_limit_bytes;
        let used = shared.limit_stats.store_bytes();
        (used >= limit).then(|| {
            let refusals = shared.limit_stats.refused(crate::metrics::Limit::StoreUsage);
            if refusals.is_power_of_two() {
                tracing::warn!(used, limit, refusals, "storeUsage limit reached: persistent sends refused until consumers free journal space");
            }
            format!("storeUsage limit of {limit} bytes reached: the journal holds {used} bytes")
        })
    }
    fn volatile(&mut self, payload: &[u8]) {
        if self.0.shipping.get() {
            (self.0.ship_volatile)(Bytes::copy_from_slice(payload));
        }
    }
}

/// Applies one journal record (read by recovery or shipped by the master) to the core.
pub(super) fn apply_payload(core: &mut ShardCore, payload: &Bytes, location: Location) {
    match Record::decode(payload) {
        Ok(rec) => core.apply(rec, Some(location)),
        Err(e) => {
            // The store's checksum matched, so this is a format bug, not a torn
            // write: keep going rather than refuse to start.
            tracing::error!(location = ?location, error = %e, "undecodable journal record skipped");
        }
    }
}
