//! WireFormatInfo (type 1): the first frame each way, and the negotiation it drives.
//!
//! ```text
//! magic    8 raw bytes "ActiveMQ" (41 63 74 69 76 65 4D 51), no flag, no length
//! version  i32 (the 5.17 client sends 12)
//! options  BS: bool present ; i32 length ; primitive map   (no BaseCommand header)
//! ```
//!
//! Both peers start loose, uncached, with a size prefix and without stack traces, so this
//! frame is always loose; its layout is the same in every version (1 to 12). Each option of the result is the AND (booleans) or the min
//! (numbers) of both sides, so a broker that sends `TightEncodingEnabled=false` and
//! `CacheEnabled=false` keeps the whole connection loose and uncached: the only format
//! this codec speaks. A missing boolean reads as false, a missing number as 0.
//!
//! Option keys and their tags (the Java getters cast, so the tags matter): booleans are
//! BOOLEAN, `CacheSize` is INTEGER, `MaxInactivityDuration`,
//! `MaxInactivityDurationInitalDelay` (sic) and `MaxFrameSize` are LONG, the provider
//! fields are STRING. Reading, any integer tag is accepted for a number.

use super::error::OpenWireError;
use super::primitives::{PrimitiveMap, PrimitiveValue, Reader, Writer};

type Result<T> = std::result::Result<T, OpenWireError>;

/// The 8 bytes every WireFormatInfo starts with.
pub const MAGIC: [u8; 8] = *b"ActiveMQ";

/// The OpenWire version Tandem advertises, the newest this codec implements; a client
/// of an older version (1 or later) gets its own (`min` of both, [`Negotiated::version`]).
pub const OPENWIRE_VERSION: i32 = 12;

pub const TIGHT_ENCODING_ENABLED: &str = "TightEncodingEnabled";
pub const CACHE_ENABLED: &str = "CacheEnabled";
pub const CACHE_SIZE: &str = "CacheSize";
pub const SIZE_PREFIX_DISABLED: &str = "SizePrefixDisabled";
pub const STACK_TRACE_ENABLED: &str = "StackTraceEnabled";
pub const TCP_NO_DELAY_ENABLED: &str = "TcpNoDelayEnabled";
pub const MAX_INACTIVITY_DURATION: &str = "MaxInactivityDuration";
/// The misspelling is Java's and is what goes on the wire.
pub const MAX_INACTIVITY_DURATION_INITIAL_DELAY: &str = "MaxInactivityDurationInitalDelay";
pub const MAX_FRAME_SIZE: &str = "MaxFrameSize";
pub const MAX_FRAME_SIZE_ENABLED: &str = "MaxFrameSizeEnabled";
pub const PROVIDER_NAME: &str = "ProviderName";
pub const PROVIDER_VERSION: &str = "ProviderVersion";
pub const PLATFORM_DETAILS: &str = "PlatformDetails";
pub const HOST: &str = "Host";

/// A peer's wire format preferences.
#[derive(Debug, Clone, PartialEq)]
pub struct WireFormatInfo {
    pub version: i32,
    /// The options map; a null or absent map reads as empty (and is written as an empty
    /// map, never null).
    pub options: PrimitiveMap,
}

impl WireFormatInfo {
    /// What Tandem sends on accept (OPENWIRE.md §1.4): version 12, loose, no cache, size
    /// prefix on, no stack traces, TCP_NODELAY, 30 s inactivity with a 10 s initial delay.
    pub fn tandem(max_frame_size: i64) -> WireFormatInfo {
        WireFormatInfo::offer(30_000, max_frame_size)
    }

    /// Tandem's offer with this MaxInactivityDuration and MaxFrameSize: the broker's
    /// ([`WireFormatInfo::tandem`]) and the Rust client's (`crate::client::openwire`),
    /// built in one place.
    pub fn offer(max_inactivity_ms: i64, max_frame_size: i64) -> WireFormatInfo {
        let options = [
            (TIGHT_ENCODING_ENABLED, PrimitiveValue::Boolean(false)),
            (CACHE_ENABLED, PrimitiveValue::Boolean(false)),
            (CACHE_SIZE, PrimitiveValue::Int(0)),
            (SIZE_PREFIX_DISABLED, PrimitiveValue::Boolean(false)),
            (STACK_TRACE_ENABLED, PrimitiveValue::Boolean(false)),
            (TCP_NO_DELAY_ENABLED, PrimitiveValue::Boolean(true)),
            (
                MAX_INACTIVITY_DURATION,
                PrimitiveValue::Long(max_inactivity_ms),
            ),
            (
                MAX_INACTIVITY_DURATION_INITIAL_DELAY,
                PrimitiveValue::Long(10_000),
            ),
            (MAX_FRAME_SIZE, PrimitiveValue::Long(max_frame_size)),
            (MAX_FRAME_SIZE_ENABLED, PrimitiveValue::Boolean(true)),
            (PROVIDER_NAME, PrimitiveValue::string("Tandem")),
            (
                PROVIDER_VERSION,
                PrimitiveValue::string(env!("CARGO_PKG_VERSION")),
            ),
            (PLATFORM_DETAILS, PrimitiveValue::string("Rust")),
        ];
        WireFormatInfo {
            version: OPENWIRE_VERSION,
            options: options.into_iter().collect(),
        }
    }

    /// A boolean option as Java reads it (`Boolean.TRUE == getProperty(key)`): anything
    /// but a true BOOLEAN is false.
    pub fn bool_option(&self, key: &str) -> bool {
        self.options.get(key).and_then(PrimitiveValue::as_bool) == Some(true)
    }

    /// A numeric option; missing (or not a number) reads as 0.
    pub fn long_option(&self, key: &str) -> i64 {
        self.options
            .get(key)
            .and_then(PrimitiveValue::as_i64)
            .unwrap_or(0)
    }

    /// The result of negotiating `self` (this side's preferences) with the peer's, as
    /// Java's `OpenWireFormat.renegotiateWireFormat` and `InactivityMonitor` compute it.
    pub fn negotiate(&self, peer: &WireFormatInfo) -> Negotiated {
        let both = |key| self.bool_option(key) && peer.bool_option(key);
        let plain_min = |key| self.long_option(key).min(peer.long_option(key));
        Negotiated {
            version: java_min(i64::from(self.version), i64::from(peer.version)) as i32,
            tight_encoding_enabled: both(TIGHT_ENCODING_ENABLED),
            cache_enabled: both(CACHE_ENABLED),
            size_prefix_disabled: both(SIZE_PREFIX_DISABLED),
            stack_trace_enabled: both(STACK_TRACE_ENABLED),
            tcp_no_delay_enabled: both(TCP_NO_DELAY_ENABLED),
            max_frame_size: java_min(
                self.long_option(MAX_FRAME_SIZE),
                peer.long_option(MAX_FRAME_SIZE),
            ),
            max_inactivity_duration_ms: plain_min(MAX_INACTIVITY_DURATION),
            max_inactivity_duration_initial_delay_ms: plain_min(
                MAX_INACTIVITY_DURATION_INITIAL_DELAY,
            ),
        }
    }

    pub(crate) fn read(r: &mut Reader) -> Result<WireFormatInfo> {
        if r.raw(MAGIC.len())? != MAGIC[..] {
            return Err(OpenWireError::BadMagic);
        }
        let version = r.i32()?;
        let options = match r.byte_seq()? {
            Some(bytes) => PrimitiveMap::decode(&bytes)?,
            None => PrimitiveMap::new(),
        };
        Ok(WireFormatInfo { version, options })
    }

    pub(crate) fn write(&self, w: &mut Writer) -> Result<()> {
        w.raw(&MAGIC);
        w.i32(self.version);
        w.byte_seq(Some(&self.options.to_bytes()?))
    }
}

/// Java's `OpenWireFormat.min`: the smaller value, where a value <= 0 means "unset" and
/// loses to the other side's.
fn java_min(a: i64, b: i64) -> i64 {
    if (a < b && a > 0) || b <= 0 {
        a
    } else {
        b
    }
}

/// The format both sides use after the WireFormatInfo exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub version: i32,
    /// Must be false for this codec (Tandem's own WireFormatInfo guarantees it).
    pub tight_encoding_enabled: bool,
    /// Must be false for this codec (Tandem's own WireFormatInfo guarantees it).
    pub cache_enabled: bool,
    pub size_prefix_disabled: bool,
    /// Throwables carry stack traces and causes: configure [`super::Decoder`] and
    /// [`super::Encoder`] with it.
    pub stack_trace_enabled: bool,
    pub tcp_no_delay_enabled: bool,
    /// The largest frame the peer accepts (<= 0: no limit).
    pub max_frame_size: i64,
    /// Read timeout; <= 0 disables keep-alive on the client. Write checks run at a third.
    pub max_inactivity_duration_ms: i64,
    pub max_inactivity_duration_initial_delay_ms: i64,
}

impl Negotiated {
    /// Whether this codec can speak the negotiated format (loose, no cache, prefixed).
    pub fn is_supported(&self) -> bool {
        !self.tight_encoding_enabled && !self.cache_enabled && !self.size_prefix_disabled
    }
}
