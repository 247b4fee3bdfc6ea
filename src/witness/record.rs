//! The record the pair keeps in etcd: who serves, at which epoch, and which slave is in
//! sync. Written by the lease holder; read by everyone (`Lost` replies, `Expect::Is`).
//!
//! # Byte layout
//!
//! ASCII text, three fields in this order, `;`-separated, no spaces, no trailing
//! separator:
//!
//! ```text
//! epoch=<u64>;node=<u16>;in_sync=<u16 | ->
//! epoch=7;node=1;in_sync=2      node 1 serves epoch 7, node 2 is in sync
//! epoch=7;node=1;in_sync=-      node 1 serves epoch 7 alone
//! ```
//!
//! Numbers are decimal without sign or leading zeros. The encoding is canonical: a
//! record has exactly one byte string and [`Record::decode`] accepts only that string
//! (it re-encodes and compares). This matters because [`super::Expect::Is`] is an etcd
//! compare on the raw value bytes: equal records must mean equal bytes.

use super::WitnessError;

/// What the lease holder last wrote: the serving node, its epoch, and its in-sync slave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    /// The replication epoch the serving node serves; a new holder writes a higher one.
    pub epoch: u64,
    /// The node (broker id within the pair) that holds or held the right to serve.
    pub node: u16,
    /// The slave node that is in sync with `node`; `None`: `node` confirms writes alone,
    /// so only `node` has every confirmed write.
    pub in_sync: Option<u16>,
}

impl Record {
    /// The canonical bytes (module doc).
    pub fn encode(&self) -> String {
        let in_sync = match self.in_sync {
            Some(n) => n.to_string(),
            None => "-".to_string(),
        };
        format!(
            "epoch={};node={};in_sync={}",
            self.epoch, self.node, in_sync
        )
    }

    /// Parses the canonical bytes; anything else (other order, spaces, leading zeros,
    /// extra fields, not UTF-8) is [`WitnessError::BadRecord`].
    pub fn decode(bytes: &[u8]) -> Result<Record, WitnessError> {
        let bad = |why: &str| WitnessError::BadRecord {
            value: String::from_utf8_lossy(bytes).into_owned(),
            why: why.to_string(),
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let mut fields = text.split(';');
        let mut field = |name: &str| -> Result<&str, WitnessError> {
            let f = fields
                .next()
                .ok_or_else(|| bad(&format!("missing field {name}")))?;
            f.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .ok_or_else(|| bad(&format!("expected {name}=..., found {f:?}")))
        };
        let epoch = field("epoch")?;
        let node = field("node")?;
        let in_sync = field("in_sync")?;
        if fields.next().is_some() {
            return Err(bad("more than three fields"));
        }
        let record = Record {
            epoch: epoch
                .parse()
                .map_err(|_| bad(&format!("epoch {epoch:?} is not a u64")))?,
            node: node
                .parse()
                .map_err(|_| bad(&format!("node {node:?} is not a u16")))?,
            in_sync: match in_sync {
                "-" => None,
                n => Some(
                    n.parse()
                        .map_err(|_| bad(&format!("in_sync {n:?} is neither a u16 nor -")))?,
                ),
            },
        };
        // `parse` accepts "+5" and "007": only the canonical spelling is a record.
        if record.encode() != text {
            return Err(bad("not in canonical form"));
        }
        Ok(record)
    }
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for r in [
            Record {
                epoch: 0,
                node: 0,
                in_sync: None,
            },
            Record {
                epoch: 7,
                node: 1,
                in_sync: Some(2),
            },
            Record {
                epoch: u64::MAX,
                node: u16::MAX,
                in_sync: Some(u16::MAX),
            },
        ] {
            assert_eq!(Record::decode(r.encode().as_bytes()).unwrap(), r);
        }
        assert_eq!(
            Record {
                epoch: 7,
                node: 1,
                in_sync: None
            }
            .encode(),
            "epoch=7;node=1;in_sync=-"
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "garbage",
            "epoch=1;node=1",
            "epoch=1;node=1;in_sync=-;",
            "epoch=1;node=1;in_sync=-;x=1",
            "node=1;epoch=1;in_sync=-",
            "epoch=01;node=1;in_sync=-",
            "epoch=+1;node=1;in_sync=-",
            "epoch=-1;node=1;in_sync=-",
            "epoch=1;node=65536;in_sync=-",
            "epoch=1;node=1;in_sync=",
            "epoch=1;node=1;in_sync=none",
            "epoch= 1;node=1;in_sync=-",
            "epoch=1;node=1;in_sync=-\n",
            "epochs=1;node=1;in_sync=-",
        ] {
            assert!(
                matches!(
                    Record::decode(bad.as_bytes()),
                    Err(WitnessError::BadRecord { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(Record::decode(&[0xff, 0xfe]).is_err());
    }
}
