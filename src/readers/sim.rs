//! Simulated readers, for tests, demos and labs without hardware yet:
//!
//! - `LineReader` (kind `sim`): one UID per line appended to a file or written to a FIFO,
//!   e.g. by `fabgate reader tap UID`. Each line is one tap.
//! - `SimMfrc522` (kind `mfrc522-sim`): the register-level chip simulation driven by the
//!   real MFRC522 driver; the card on its antenna is the hex UID written in a file (empty
//!   or missing file: no card). `fabgate reader tap` puts the card there briefly.

use super::sim_chip::{Field, SimChip};
use super::{uid_from_text, Error, Mfrc522Reader, Reader, Result};
use crate::config::{ReaderConfig, ReaderKind, UidFormat};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn sim_path(cfg: &ReaderConfig) -> Result<PathBuf> {
    cfg.path.clone().ok_or_else(|| Error::Io {
        path: String::new(),
        source: std::io::Error::other(format!("reader {:?} has no path", cfg.name)),
    })
}

/// Reads the lines appended to a file (or written to a FIFO) since the last poll.
pub struct LineReader {
    path: PathBuf,
    file: File,
    regular: bool,
    pos: u64,
    partial: Vec<u8>,
    queue: VecDeque<String>,
    format: UidFormat,
}

impl LineReader {
    /// Opens (creating an empty regular file if nothing is there) without blocking; only
    /// lines written after this are read.
    pub fn open(cfg: &ReaderConfig) -> Result<LineReader> {
        let path = sim_path(cfg)?;
        if !path.exists() {
            File::create(&path).map_err(io(&path))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(io(&path))?;
        let regular = file.metadata().map_err(io(&path))?.is_file();
        let pos = if regular {
            file.seek(SeekFrom::End(0)).map_err(io(&path))?
        } else {
            0
        };
        Ok(LineReader {
            path,
            file,
            regular,
            pos,
            partial: Vec::new(),
            queue: VecDeque::new(),
            format: cfg.uid_format,
        })
    }

    fn read_new(&mut self) -> Result<()> {
        if self.regular {
            let len = self.file.metadata().map_err(io(&self.path))?.len();
            if len < self.pos {
                // Truncated: start over.
                self.pos = self.file.seek(SeekFrom::Start(0)).map_err(io(&self.path))?;
                self.partial.clear();
            }
            if len == self.pos {
                return Ok(());
            }
        }
        let mut buf = [0u8; 512];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.pos += n as u64;
                    self.partial.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(&self.path)(e)),
            }
        }
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            match uid_from_text(&text, self.format) {
                Some(uid) => self.queue.push_back(uid),
                None => log::warn!(
                    "{}: ignored a line that is not a card UID: {:?}",
                    self.path.display(),
                    crate::terminals::messages::truncate(text.trim(), 40)
                ),
            }
        }
        if self.partial.len() > 4096 {
            self.partial.clear();
        }
        Ok(())
    }
}

impl Reader for LineReader {
    fn poll(&mut self) -> Result<Option<String>> {
        if self.queue.is_empty() {
            self.read_new()?;
        }
        Ok(self.queue.pop_front())
    }

    fn describe(&self) -> String {
        let what = if self.regular { "file" } else { "FIFO" };
        format!("simulated reader, lines of {what} {}", self.path.display())
    }
}

/// The simulated MFRC522 with its card in a file.
pub struct SimMfrc522 {
    reader: Mfrc522Reader<SimChip>,
    field: Field,
    path: PathBuf,
}

impl SimMfrc522 {
    pub fn open(cfg: &ReaderConfig) -> Result<SimMfrc522> {
        let path = sim_path(cfg)?;
        Self::with_field(Field::default(), path)
    }

    /// A simulated chip whose card is `path`'s content.
    pub fn with_field(field: Field, path: PathBuf) -> Result<SimMfrc522> {
        let reader = Mfrc522Reader::new(
            SimChip::new(field.clone()),
            format!("simulated SPI ({})", path.display()),
        )?;
        Ok(SimMfrc522 {
            reader,
            field,
            path,
        })
    }

    /// Puts the card the file names on the antenna, or takes it away.
    fn sync_field(&mut self) {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let uid = uid_from_text(&text, UidFormat::Hex).and_then(|h| hex::decode(h).ok());
        match uid {
            Some(bytes) => self.field.place(&bytes),
            None => self.field.remove(),
        }
    }
}

impl Reader for SimMfrc522 {
    fn poll(&mut self) -> Result<Option<String>> {
        self.sync_field();
        self.reader.poll()
    }

    fn describe(&self) -> String {
        self.reader.describe()
    }
}

/// `fabgate reader tap`: presents a card to a simulated reader of the running daemon.
pub fn tap(cfg: &ReaderConfig, uid: &str) -> std::result::Result<(), String> {
    let path = cfg
        .path
        .as_deref()
        .ok_or_else(|| format!("reader {:?} has no path", cfg.name))?;
    match cfg.kind {
        ReaderKind::Sim => {
            let fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(!fifo)
                .custom_flags(if fifo { libc::O_NONBLOCK } else { 0 })
                .open(path)
                .map_err(|e| {
                    if e.raw_os_error() == Some(libc::ENXIO) {
                        format!(
                            "nobody reads the FIFO {}: is the daemon running?",
                            path.display()
                        )
                    } else {
                        format!("{}: {e}", path.display())
                    }
                })?;
            file.write_all(format!("{uid}\n").as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        ReaderKind::Mfrc522Sim => {
            std::fs::write(path, format!("{uid}\n"))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            // Long enough for a few polls, then the card is taken away.
            std::thread::sleep(Duration::from_millis((cfg.poll_ms * 4).max(400)));
            std::fs::write(path, "").map_err(|e| format!("{}: {e}", path.display()))
        }
        ReaderKind::Mfrc522 | ReaderKind::Wedge => Err(format!(
            "reader {:?} is real hardware: present a real card",
            cfg.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: ReaderKind, path: &Path) -> ReaderConfig {
        let mut c = ReaderConfig::example("sim", kind);
        c.path = Some(path.to_owned());
        c
    }

    #[test]
    fn line_reader_reads_appended_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taps");
        std::fs::write(&path, "aabbccd0\n").unwrap();
        let c = cfg(ReaderKind::Sim, &path);
        let mut r = LineReader::open(&c).unwrap();
        assert_eq!(r.poll().unwrap(), None);
        tap(&c, "AABBCCD1").unwrap();
        tap(&c, "0012345678").unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"not a card\naabb")
            .unwrap();
        assert_eq!(r.poll().unwrap().as_deref(), Some("aabbccd1"));
        assert_eq!(r.poll().unwrap().as_deref(), Some("00bc614e"));
        assert_eq!(r.poll().unwrap(), None);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"ccd2\n")
            .unwrap();
        assert_eq!(r.poll().unwrap().as_deref(), Some("aabbccd2"));
        std::fs::write(&path, "").unwrap();
        tap(&c, "aabbccd3").unwrap();
        assert_eq!(r.poll().unwrap().as_deref(), Some("aabbccd3"));
    }

    #[test]
    fn line_reader_reads_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let c = cfg(ReaderKind::Sim, &path);
        let mut r = LineReader::open(&c).unwrap();
        assert!(r.describe().contains("FIFO"));
        assert_eq!(r.poll().unwrap(), None);
        tap(&c, "aabbccd4").unwrap();
        assert_eq!(r.poll().unwrap().as_deref(), Some("aabbccd4"));
        drop(r);
        assert!(tap(&c, "aabbccd4").unwrap_err().contains("daemon running"));
    }

    #[test]
    fn simulated_mfrc522_reads_the_card_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card");
        let mut r = SimMfrc522::open(&cfg(ReaderKind::Mfrc522Sim, &path)).unwrap();
        assert_eq!(r.poll().unwrap(), None);
        std::fs::write(&path, "aabbccd3\n").unwrap();
        assert_eq!(r.poll().unwrap().as_deref(), Some("aabbccd3"));
        std::fs::write(&path, "").unwrap();
        assert_eq!(r.poll().unwrap(), None);
    }
}
