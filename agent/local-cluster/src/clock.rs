//! Timestamps and uids: RFC 3339 UTC seconds (as `creationTimestamp` is written) and
//! uuid-shaped identifiers, without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

/// Now as `2026-11-23T10:00:00Z`.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

pub use gitsync_core::time::{parse_rfc3339, rfc3339};

/// The simulated controllers' clock: wall time from start, scaled, plus whatever tests
/// have advanced it by, so a ten-minute progress deadline can pass in a millisecond.
#[derive(Debug)]
pub struct SimClock {
    start: std::time::Instant,
    start_ms: u64,
    scale: f64,
    advanced_ms: std::sync::atomic::AtomicU64,
}

impl SimClock {
    /// `scale` 1.0 runs at wall speed; 10.0 ten times faster.
    pub fn new(scale: f64) -> Self {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        Self {
            start: std::time::Instant::now(),
            start_ms,
            scale: if scale.is_finite() && scale > 0.0 {
                scale
            } else {
                1.0
            },
            advanced_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Milliseconds since the epoch on this clock.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    pub fn now_ms(&self) -> u64 {
        let elapsed = (self.start.elapsed().as_millis() as f64 * self.scale) as u64;
        self.start_ms + elapsed + self.advanced_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Jumps forward.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.advanced_ms
            .fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A uuid-shaped unique id derived from a seed and the clock.
pub fn uid(seed: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hash = hex::encode(Sha256::digest(format!("{seed}/{nanos}").as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &hash[0..8],
        &hash[8..12],
        &hash[12..16],
        &hash[16..20],
        &hash[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_435_200), "2026-11-23T12:00:00Z");
    }

    #[test]
    fn parses_what_it_formats() {
        for secs in [0, 951_782_400, 1_795_435_200, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
        assert_eq!(parse_rfc3339("2026-11-23T12:00:00.5Z"), None);
    }

    #[test]
    fn sim_clock_advances() {
        let clock = SimClock::new(1.0);
        let before = clock.now_ms();
        clock.advance(std::time::Duration::from_mins(10));
        assert!(clock.now_ms() >= before + 600_000);
    }

    #[test]
    fn uids_are_uuid_shaped_and_distinct() {
        let a = uid("x");
        assert_eq!(a.len(), 36);
        assert_ne!(a, uid("y"));
    }
}
