//! Card readers wired to the Pi itself. This module owns the `Reader` trait (poll → card
//! UID or nothing), its implementations (an MFRC522 on SPI, a USB keyboard wedge, simulated
//! readers for tests and demos), the feedback outputs (buzzer, LED, relay), the one UID
//! normalisation every reader goes through, and the thread that polls them all
//! (`service`). What a tap *means* (sign in at the entrance, start a machine) is decided
//! by `lab` through `terminals::local`: a local reader is just another terminal.
//!
//! UID rule, as the Fab-O-Matic boards send them (protocol.md §0): the UID bytes as
//! lowercase hex, two digits per byte, in the order the card sends them — 8 digits for
//! the usual 4-byte cards, 14 or 20 for 7- and 10-byte cards. Readers that deliver text
//! (keyboard wedges, the simulated reader) turn it into bytes first (`uid_from_text`),
//! then every reader calls `normalize_uid`.

mod outputs;
mod rc522;
pub mod service;
mod sim;
pub mod sim_chip;
mod wedge;

pub use outputs::{open_feedback, open_relay, Feedback, FileRelay, Relay, Signal};
pub use rc522::{Mfrc522Reader, Pacing};
pub use service::Service;
pub use sim::{tap as sim_tap, LineReader, SimMfrc522};
pub use wedge::{decode_events, KeyDecoder, WedgeReader};

use crate::config::{ReaderConfig, ReaderKind, UidFormat};

/// Why a reader cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SPI device {path} is missing: enable SPI with `dtparam=spi=on` in /boot/firmware/config.txt (then reboot), and check spi_bus/spi_cs")]
    NoSpi { path: String },
    #[error("SPI: {0}")]
    Spi(String),
    #[error("GPIO: {0}")]
    Gpio(String),
    #[error("no MFRC522 answers on the SPI bus (version register reads {0:#04x}, expected 0x91 or 0x92): check the wiring and the chip select")]
    NoChip(u8),
    #[error("MFRC522: {0}")]
    Chip(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("this fabgate was built without the `hw` feature: {0} readers need it")]
    NoHardware(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A source of card UIDs.
pub trait Reader: Send {
    /// The card seen now, already normalised (`normalize_uid`), or nothing. Never blocks
    /// for long: the service polls every reader in turn.
    fn poll(&mut self) -> Result<Option<String>>;
    /// One line for logs and `fabgate reader list`: what it is and whether it works.
    fn describe(&self) -> String;
}

/// THE normalisation of a card UID: lowercase hex of the bytes, zero padded (protocol.md
/// §0: `aabbccd1` for a 4-byte card). None for an empty UID or one longer than 16 bytes
/// (ISO 14443 UIDs have 4, 7 or 10; the board adapter takes at most 32 digits).
pub fn normalize_uid(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() || bytes.len() > 16 {
        return None;
    }
    Some(hex::encode(bytes))
}

/// Text from a wedge or a file as UID bytes, then `normalize_uid`.
///
/// - `hex`: hex digits (any case), an odd count gets a leading zero.
/// - `decimal`: the decimal number most 125 kHz (EM4100) keyboard wedges type: values up
///   to 2^32-1 are the card's low 32 bits and become 4 bytes (`0012345678` → `00bc614e`);
///   larger ones (13-digit readers printing all 40 bits) keep their minimal bytes.
/// - `auto`: exactly 10 decimal digits is the usual 125 kHz wedge output and is read as
///   decimal; anything else as hex.
pub fn uid_from_text(text: &str, format: UidFormat) -> Option<String> {
    let t = text.trim();
    if t.is_empty() || t.len() > 32 {
        return None;
    }
    let decimal = match format {
        UidFormat::Hex => false,
        UidFormat::Decimal => true,
        UidFormat::Auto => t.len() == 10 && t.bytes().all(|b| b.is_ascii_digit()),
    };
    if decimal {
        if !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = t.parse().ok()?;
        let bytes = n.to_be_bytes();
        let keep = if n <= u64::from(u32::MAX) {
            4
        } else {
            8 - (n.leading_zeros() as usize / 8)
        };
        return normalize_uid(&bytes[8 - keep..]);
    }
    if !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = if t.len() % 2 == 1 {
        format!("0{t}")
    } else {
        t.to_string()
    };
    normalize_uid(&hex::decode(padded).ok()?)
}

/// Turns what readers report into taps: the same card again within `repeat_ms` of its
/// last sighting is the same tap. A card left on an MFRC522 is seen at every poll, so it
/// keeps refreshing its sighting and taps once; a wedge that types a UID twice taps once.
#[derive(Debug)]
pub struct Debounce {
    repeat_ms: i64,
    last: Option<(String, i64)>,
}

impl Debounce {
    pub fn new(repeat_ms: u64) -> Debounce {
        Debounce {
            repeat_ms: repeat_ms as i64,
            last: None,
        }
    }

    /// Feeds one poll result at `now_ms`; returns the UID when it is a new tap.
    pub fn feed(&mut self, seen: Option<String>, now_ms: i64) -> Option<String> {
        let uid = seen?;
        if let Some((last, at)) = &mut self.last {
            if *last == uid && now_ms - *at < self.repeat_ms {
                *at = now_ms;
                return None;
            }
        }
        self.last = Some((uid.clone(), now_ms));
        Some(uid)
    }
}

/// Opens the reader a config entry describes. Hardware errors are clean errors.
pub fn open(cfg: &ReaderConfig) -> Result<Box<dyn Reader>> {
    match cfg.kind {
        ReaderKind::Mfrc522 => rc522::open_spi(cfg),
        ReaderKind::Mfrc522Sim => Ok(Box::new(SimMfrc522::open(cfg)?)),
        ReaderKind::Wedge => Ok(Box::new(WedgeReader::open(cfg)?)),
        ReaderKind::Sim => Ok(Box::new(LineReader::open(cfg)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_lowercase_hex_of_the_bytes() {
        assert_eq!(
            normalize_uid(&[0xAA, 0xBB, 0xCC, 0xD1]).as_deref(),
            Some("aabbccd1")
        );
        assert_eq!(normalize_uid(&[0, 0, 0x0a, 1]).as_deref(), Some("00000a01"));
        assert_eq!(
            normalize_uid(&[4, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc]).as_deref(),
            Some("04123456789abc")
        );
        assert_eq!(normalize_uid(&[]), None);
        assert_eq!(normalize_uid(&[0; 17]), None);
    }

    #[test]
    fn text_uids() {
        use UidFormat::*;
        let cases: &[(&str, UidFormat, Option<&str>)] = &[
            ("AABBCCD1", Auto, Some("aabbccd1")),
            (" aabbccd1\n", Hex, Some("aabbccd1")),
            ("abc", Hex, Some("0abc")),
            ("0012345678", Auto, Some("00bc614e")),
            ("0012345678", Hex, Some("0012345678")),
            ("4294967295", Decimal, Some("ffffffff")),
            ("4294967296", Decimal, Some("0100000000")),
            ("12345678", Auto, Some("12345678")),
            ("12ab", Decimal, None),
            ("xyz", Auto, None),
            ("", Auto, None),
            ("99999999999999999999999", Decimal, None),
        ];
        for (text, format, want) in cases {
            assert_eq!(
                uid_from_text(text, *format).as_deref(),
                *want,
                "{text:?} {format:?}"
            );
        }
    }

    #[test]
    fn debounce_taps_once_per_presentation() {
        let mut d = Debounce::new(1000);
        let c = || Some("aabbccd1".to_string());
        assert_eq!(d.feed(c(), 0).as_deref(), Some("aabbccd1"));
        // Lying on the reader: seen at every poll, no new tap.
        for t in (100..3000).step_by(100) {
            assert_eq!(d.feed(c(), t), None);
        }
        // One missed poll does not make a new tap either.
        assert_eq!(d.feed(None, 3000), None);
        assert_eq!(d.feed(c(), 3100), None);
        // Taken away, presented again later: a new tap; another card taps at once.
        assert_eq!(d.feed(c(), 4200).as_deref(), Some("aabbccd1"));
        assert_eq!(
            d.feed(Some("aabbccd2".into()), 4300).as_deref(),
            Some("aabbccd2")
        );
    }
}
