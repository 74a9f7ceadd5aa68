//! USB keyboard-wedge readers: they type the card's UID and Enter. We read their
//! `/dev/input/event*` device directly, grabbed (`EVIOCGRAB`) so the console and any
//! login prompt never receive the keystrokes, and decode the key presses ourselves.
//!
//! Each `struct input_event` is a `struct timeval` followed by `u16 type`, `u16 code`,
//! `i32 value` (24 bytes on 64-bit Linux, 16 on the Pi Zero's 32-bit one). Key presses
//! (`EV_KEY`, value 1) of 0-9, a-f (main row or keypad) build the text; Enter ends it;
//! other keys (Shift, prefixes some readers send) are ignored. The text becomes a UID
//! through `uid_from_text` with the reader's `uid_format` (10 decimal digits from a
//! 125 kHz reader = the card's low 32 bits, see `readers`).

use super::{uid_from_text, Error, Reader, Result};
use crate::config::{ReaderConfig, UidFormat};
use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

const EV_KEY: u16 = 1;
const KEY_PRESS: i32 = 1;
const KEY_ENTER: u16 = 28;
const KEY_KPENTER: u16 = 96;
/// `_IOW('E', 0x90, int)`.
const EVIOCGRAB: u64 = 0x4004_4590;
/// Longest text kept before Enter (a stuck key must not grow memory).
const MAX_TEXT: usize = 32;

/// The character a key code types, for the keys a wedge uses (linux/input-event-codes.h).
fn key_char(code: u16) -> Option<char> {
    Some(match code {
        2..=10 => (b'1' + (code - 2) as u8) as char,
        11 => '0',
        30 => 'a',
        48 => 'b',
        46 => 'c',
        32 => 'd',
        18 => 'e',
        33 => 'f',
        82 => '0',
        79 => '1',
        80 => '2',
        81 => '3',
        75 => '4',
        76 => '5',
        77 => '6',
        71 => '7',
        72 => '8',
        73 => '9',
        _ => return None,
    })
}

/// Key presses → lines of text.
#[derive(Debug, Default)]
pub struct KeyDecoder {
    text: String,
}

impl KeyDecoder {
    /// Feeds one input event; returns the text typed when it is Enter.
    pub fn event(&mut self, kind: u16, code: u16, value: i32) -> Option<String> {
        if kind != EV_KEY || value != KEY_PRESS {
            return None;
        }
        if code == KEY_ENTER || code == KEY_KPENTER {
            return Some(std::mem::take(&mut self.text)).filter(|t| !t.is_empty());
        }
        if let Some(c) = key_char(code) {
            if self.text.len() >= MAX_TEXT {
                self.text.clear();
            }
            self.text.push(c);
        }
        None
    }
}

/// Decodes raw `input_event` records of `event_size` bytes (a trailing partial record is
/// left for the caller); returns the lines completed.
pub fn decode_events(bytes: &[u8], event_size: usize, decoder: &mut KeyDecoder) -> Vec<String> {
    let mut lines = Vec::new();
    if event_size < 8 {
        return lines;
    }
    for ev in bytes.chunks_exact(event_size) {
        let tail = &ev[event_size - 8..];
        let kind = u16::from_ne_bytes([tail[0], tail[1]]);
        let code = u16::from_ne_bytes([tail[2], tail[3]]);
        let value = i32::from_ne_bytes([tail[4], tail[5], tail[6], tail[7]]);
        if let Some(line) = decoder.event(kind, code, value) {
            lines.push(line);
        }
    }
    lines
}

/// A grabbed keyboard-wedge event device.
pub struct WedgeReader {
    path: PathBuf,
    file: File,
    decoder: KeyDecoder,
    carry: Vec<u8>,
    queue: VecDeque<String>,
    format: UidFormat,
}

impl WedgeReader {
    pub fn open(cfg: &ReaderConfig) -> Result<WedgeReader> {
        let path = cfg.device.clone().unwrap_or_default();
        let err = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(err)?;
        // SAFETY: EVIOCGRAB takes an int by value; the fd is open for the whole call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), EVIOCGRAB as _, 1 as libc::c_int) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::Io {
                path: path.display().to_string(),
                source: std::io::Error::new(
                    e.kind(),
                    format!("cannot grab the device (is it an input event device, not used by another program?): {e}"),
                ),
            });
        }
        Ok(WedgeReader {
            path,
            file,
            decoder: KeyDecoder::default(),
            carry: Vec::new(),
            queue: VecDeque::new(),
            format: cfg.uid_format,
        })
    }
}

impl Reader for WedgeReader {
    fn poll(&mut self) -> Result<Option<String>> {
        let size = std::mem::size_of::<libc::input_event>();
        let mut buf = [0u8; 1536];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.carry.extend_from_slice(&buf[..n]);
                    let whole = self.carry.len() / size * size;
                    for line in decode_events(&self.carry[..whole], size, &mut self.decoder) {
                        match uid_from_text(&line, self.format) {
                            Some(uid) => self.queue.push_back(uid),
                            None => log::warn!(
                                "{}: typed {line:?}, not a card UID",
                                self.path.display()
                            ),
                        }
                    }
                    self.carry.drain(..whole);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // ENODEV: unplugged. The service reopens it later.
                Err(source) => {
                    return Err(Error::Io {
                        path: self.path.display().to_string(),
                        source,
                    })
                }
            }
        }
        Ok(self.queue.pop_front())
    }

    fn describe(&self) -> String {
        format!(
            "keyboard wedge {} (grabbed, {:?} UIDs)",
            self.path.display(),
            self.format
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events as recorded from a reader (`evtest`-style) on 64-bit Linux: each key press
    /// is preceded by an EV_MSC scan code and followed by EV_SYN, then the release.
    fn record(keys: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ev = |kind: u16, code: u16, value: i32| {
            out.extend_from_slice(&1_767_225_600i64.to_ne_bytes());
            out.extend_from_slice(&123_456i64.to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(&code.to_ne_bytes());
            out.extend_from_slice(&value.to_ne_bytes());
        };
        for &k in keys {
            ev(4, 4, 0x70000 + i32::from(k)); // EV_MSC MSC_SCAN
            ev(EV_KEY, k, 1);
            ev(0, 0, 0); // EV_SYN
            ev(EV_KEY, k, 0);
            ev(0, 0, 0);
        }
        out
    }

    #[test]
    fn decodes_recorded_key_events() {
        // "AABBCCD3" typed with Shift held (some readers do), then Enter.
        let keys = [42, 30, 30, 48, 48, 46, 46, 32, 4, KEY_ENTER];
        let bytes = record(&keys);
        assert_eq!(bytes.len(), keys.len() * 5 * 24);
        let mut d = KeyDecoder::default();
        // Fed in odd-sized pieces, as reads may return them.
        let lines = decode_events(&bytes, 24, &mut d);
        assert_eq!(lines, vec!["aabbccd3"]);
        assert_eq!(
            uid_from_text(&lines[0], UidFormat::Auto).as_deref(),
            Some("aabbccd3")
        );
        // A 125 kHz reader on the keypad: 0012345678 + keypad Enter.
        let keys = [82, 82, 79, 80, 81, 75, 76, 77, 71, 72, KEY_KPENTER];
        let lines = decode_events(&record(&keys), 24, &mut d);
        assert_eq!(lines, vec!["0012345678"]);
        assert_eq!(
            uid_from_text(&lines[0], UidFormat::Auto).as_deref(),
            Some("00bc614e")
        );
        // Enter alone types nothing; repeats (value 2) are ignored.
        assert!(decode_events(&record(&[KEY_ENTER]), 24, &mut d).is_empty());
        assert_eq!(d.event(EV_KEY, 2, 2), None);
        assert_eq!(d.event(EV_KEY, KEY_ENTER, 1), None);
    }

    #[test]
    fn the_native_event_size_is_what_the_kernel_writes() {
        let size = std::mem::size_of::<libc::input_event>();
        assert!(size == 24 || size == 16, "{size}");
    }

    #[test]
    fn a_missing_device_is_a_clear_error() {
        let mut cfg = ReaderConfig::example("w", crate::config::ReaderKind::Wedge);
        cfg.device = Some("/dev/input/no-such-event".into());
        let err = WedgeReader::open(&cfg).err().unwrap().to_string();
        assert!(err.contains("/dev/input/no-such-event"), "{err}");
    }
}
