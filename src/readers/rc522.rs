//! The MFRC522 reader: the `mfrc522` driver over any embedded-hal 1.0 `SpiDevice` — rppal's
//! `/dev/spidevB.C` on the Pi (feature `hw`), or `sim_chip::SimChip` in tests.
//!
//! Each poll wakes every card in the field (WUPA, so a card left on the antenna is seen
//! at every poll), selects it through the anticollision cascade, reads its UID and halts
//! it. `Debounce` above turns "seen at every poll" into one tap.
//!
//! `Pacing` sits between the driver and the bus. The driver programs a 25 ms "no card"
//! timeout and spins on ComIrqReg until it fires: on a Pi that is 25 ms of back-to-back
//! SPI ioctls per empty poll, a quarter of a core at 10 polls/s. Cards answer REQA within
//! about 0.1 ms (ISO 14443-3 frame delay time), so `Pacing` rewrites the timer reload to
//! 2 ms, sleeps 1 ms between unanswered ComIrqReg reads, and gives up with an error if
//! the chip never signals anything (unplugged mid-poll), where the driver would spin
//! forever.

use super::{normalize_uid, Error, Reader, Result};
use embedded_hal::spi::{ErrorKind, ErrorType, Operation, SpiDevice};
use mfrc522::comm::blocking::spi::{DummyDelay, SpiInterface};
use mfrc522::{Initialized, Mfrc522};
use std::time::Duration;

const COM_IRQ_READ: u8 = 0x80 | (0x04 << 1);
const T_RELOAD_HIGH_WRITE: u8 = 0x2C << 1;
const T_RELOAD_LOW_WRITE: u8 = 0x2D << 1;
const VERSION_READ: u8 = 0x80 | (0x37 << 1);
/// Any of RxIRq, IdleIRq, ErrIRq, TimerIRq: the driver stops waiting.
const IRQ_DONE: u8 = 0x20 | 0x10 | 0x02 | 0x01;
/// 80 ticks of 25 µs (the driver's prescaler): 2 ms.
const RELOAD: u16 = 79;
/// A card's answer is in the FIFO well within this; a 2 ms timeout takes 3 reads.
const PACE: Duration = Duration::from_millis(1);
/// Unanswered ComIrqReg reads before the chip counts as gone (≈ 100 ms).
const STUCK_AFTER: u32 = 100;

/// Version register values of MFRC522 chips and common clones (FM17522: 0x88, 0xB2).
const KNOWN_VERSIONS: [u8; 5] = [0x91, 0x92, 0x88, 0xB2, 0x12];

/// The SPI device as the driver should see it (see the module doc).
pub struct Pacing<D> {
    inner: D,
    unanswered: u32,
}

#[derive(Debug)]
pub enum PacingError<E> {
    Bus(E),
    /// ComIrqReg never signalled anything.
    Stuck,
}

impl<E: embedded_hal::spi::Error> embedded_hal::spi::Error for PacingError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            PacingError::Bus(e) => e.kind(),
            PacingError::Stuck => ErrorKind::Other,
        }
    }
}

impl<D> Pacing<D> {
    pub fn new(inner: D) -> Pacing<D> {
        Pacing {
            inner,
            unanswered: 0,
        }
    }
}

impl<D: SpiDevice> ErrorType for Pacing<D> {
    type Error = PacingError<D::Error>;
}

impl<D: SpiDevice> SpiDevice for Pacing<D> {
    fn transaction(
        &mut self,
        ops: &mut [Operation<'_, u8>],
    ) -> std::result::Result<(), Self::Error> {
        if let [Operation::Write(w)] = ops {
            if w.len() == 2 && (w[0] == T_RELOAD_HIGH_WRITE || w[0] == T_RELOAD_LOW_WRITE) {
                let [high, low] = RELOAD.to_be_bytes();
                let value = if w[0] == T_RELOAD_HIGH_WRITE {
                    high
                } else {
                    low
                };
                return self.inner.write(&[w[0], value]).map_err(PacingError::Bus);
            }
        }
        let irq_read =
            matches!(ops, [Operation::TransferInPlace(b)] if b.len() == 2 && b[0] == COM_IRQ_READ);
        self.inner.transaction(ops).map_err(PacingError::Bus)?;
        if irq_read {
            if let [Operation::TransferInPlace(b)] = ops {
                if b[1] & IRQ_DONE == 0 {
                    self.unanswered += 1;
                    if self.unanswered > STUCK_AFTER {
                        self.unanswered = 0;
                        return Err(PacingError::Stuck);
                    }
                    std::thread::sleep(PACE);
                } else {
                    self.unanswered = 0;
                }
            }
        }
        Ok(())
    }
}

type Chip<D> = Mfrc522<SpiInterface<Pacing<D>, DummyDelay>, Initialized>;

/// An MFRC522 on an SPI device.
pub struct Mfrc522Reader<D: SpiDevice> {
    chip: Chip<D>,
    label: String,
    version: u8,
    failed_reads: u64,
}

fn chip_error<E: std::fmt::Debug>(e: mfrc522::Error<E>) -> Error {
    match e {
        mfrc522::Error::Comm(e) => Error::Spi(format!("{e:?}")),
        other => Error::Chip(format!("{other:?}")),
    }
}

impl<D: SpiDevice> Mfrc522Reader<D> {
    /// Checks that a chip answers (the driver's reset would spin forever on a bus that
    /// reads 0xFF), then initialises it.
    pub fn new(mut spi: D, label: String) -> Result<Mfrc522Reader<D>> {
        let mut probe = [VERSION_READ, 0];
        spi.transfer_in_place(&mut probe)
            .map_err(|e| Error::Spi(format!("{e:?}")))?;
        let version = probe[1];
        if !KNOWN_VERSIONS.contains(&version) {
            return Err(Error::NoChip(version));
        }
        let chip = Mfrc522::new(SpiInterface::new(Pacing::new(spi)))
            .init()
            .map_err(chip_error)?;
        Ok(Mfrc522Reader {
            chip,
            label,
            version,
            failed_reads: 0,
        })
    }
}

impl<D: SpiDevice + Send> Reader for Mfrc522Reader<D> {
    fn poll(&mut self) -> Result<Option<String>> {
        let atqa = match self.chip.wupa() {
            Ok(a) => a,
            Err(mfrc522::Error::Comm(e)) => return Err(Error::Spi(format!("{e:?}"))),
            // Timeout: no card. Anything else: a card at the edge of the field.
            Err(_) => return Ok(None),
        };
        match self.chip.select(&atqa) {
            Ok(uid) => {
                // A halted card answers the next WUPA only: seen at every poll, once.
                let _ = self.chip.hlta();
                Ok(normalize_uid(uid.as_bytes()))
            }
            Err(mfrc522::Error::Comm(e)) => Err(Error::Spi(format!("{e:?}"))),
            Err(e) => {
                self.failed_reads += 1;
                log::debug!("{}: card read failed: {e:?}", self.label);
                Ok(None)
            }
        }
    }

    fn describe(&self) -> String {
        let v = match self.version {
            0x91 => "v1.0".to_string(),
            0x92 => "v2.0".to_string(),
            other => format!("clone {other:#04x}"),
        };
        format!(
            "MFRC522 {v} on {} ({} failed reads)",
            self.label, self.failed_reads
        )
    }
}

/// Opens `/dev/spidev<bus>.<cs>` through rppal.
#[cfg(feature = "hw")]
pub fn open_spi(cfg: &crate::config::ReaderConfig) -> Result<Box<dyn Reader>> {
    use rppal::spi::{Bus, Mode, SimpleHalSpiDevice, SlaveSelect, Spi};
    let path = format!("/dev/spidev{}.{}", cfg.spi_bus, cfg.spi_cs);
    if !std::path::Path::new(&path).exists() {
        return Err(Error::NoSpi { path });
    }
    let bus = match cfg.spi_bus {
        0 => Bus::Spi0,
        1 => Bus::Spi1,
        _ => {
            return Err(Error::Spi(format!(
                "SPI bus {} is not supported",
                cfg.spi_bus
            )))
        }
    };
    let ss = match cfg.spi_cs {
        0 => SlaveSelect::Ss0,
        1 => SlaveSelect::Ss1,
        2 => SlaveSelect::Ss2,
        _ => {
            return Err(Error::Spi(format!(
                "chip select {} is not supported",
                cfg.spi_cs
            )))
        }
    };
    let spi = Spi::new(bus, ss, cfg.spi_hz, Mode::Mode0)
        .map_err(|e| Error::Spi(format!("{path}: {e}")))?;
    Ok(Box::new(Mfrc522Reader::new(
        SimpleHalSpiDevice::new(spi),
        path,
    )?))
}

#[cfg(not(feature = "hw"))]
pub fn open_spi(_cfg: &crate::config::ReaderConfig) -> Result<Box<dyn Reader>> {
    Err(Error::NoHardware("mfrc522"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readers::sim_chip::{Field, SimChip};

    #[test]
    fn the_real_driver_reads_uids_from_the_simulated_chip() {
        let field = Field::default();
        let mut r = Mfrc522Reader::new(SimChip::new(field.clone()), "sim".into()).unwrap();
        assert!(r.describe().contains("v2.0"), "{}", r.describe());
        assert_eq!(r.poll().unwrap(), None);
        field.place(&[0xAA, 0xBB, 0xCC, 0xD3]);
        // Seen at every poll while it lies there (WUPA wakes the halted card).
        for _ in 0..3 {
            assert_eq!(r.poll().unwrap().as_deref(), Some("aabbccd3"));
        }
        field.remove();
        assert_eq!(r.poll().unwrap(), None);
        // 7- and 10-byte UIDs go through the cascade levels.
        field.place(&[0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66]);
        assert_eq!(r.poll().unwrap().as_deref(), Some("04112233445566"));
        field.place(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(r.poll().unwrap().as_deref(), Some("0102030405060708090a"));
        assert!(r.describe().contains("0 failed reads"));
    }

    #[test]
    fn no_chip_is_a_clear_error() {
        let err = Mfrc522Reader::new(SimChip::absent(), "sim".into())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("no MFRC522 answers") && err.contains("0x00"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_poll_waits_for_the_shortened_timer() {
        let mut r = Mfrc522Reader::new(SimChip::new(Field::default()), "sim".into()).unwrap();
        let t = std::time::Instant::now();
        assert_eq!(r.poll().unwrap(), None);
        let took = t.elapsed();
        // The lower bound is the chip's timer; how fast is for benchmarks, not a debug
        // build on a loaded machine.
        assert!(took >= Duration::from_millis(2), "{took:?}");
    }

    #[cfg(feature = "hw")]
    #[test]
    fn missing_spidev_says_how_to_enable_spi() {
        if std::path::Path::new("/dev/spidev0.0").exists() {
            return;
        }
        let cfg = crate::config::ReaderConfig::example("door", crate::config::ReaderKind::Mfrc522);
        let err = open_spi(&cfg).err().unwrap().to_string();
        assert!(
            err.contains("dtparam=spi=on") && err.contains("/boot/firmware/config.txt"),
            "{err}"
        );
    }
}
