//! A register-level simulation of the NXP MFRC522 behind the embedded-hal 1.0 `SpiDevice`
//! trait, with one ISO 14443-A card that can be put on and taken off its antenna
//! (`Field`). The real `mfrc522` driver runs against it unchanged: this is what the
//! tests, the `mfrc522-sim` reader kind and `examples/reader_poll.rs` use.
//!
//! Modelled: the SPI byte protocol (address byte, then data; reads shift one byte), the
//! registers the driver touches (Command, ComIrq/DivIrq with their set/clear bit 7,
//! FIFO data/level with flush, BitFraming with StartSend and TxLastBits, Control's
//! RxLastBits, TxControl's antenna bits, Mode's CRC preset, the timer from TMode,
//! TPrescaler and TReload, running in wall-clock time, Version 0x92), the commands Idle,
//! CalcCRC (CRC_A coprocessor), Transceive and SoftReset, and the card's ISO 14443-3 state
//! machine: IDLE -REQA/WUPA-> READY -anticollision, SELECT (BCC and CRC_A checked)-> ACTIVE
//! -HLTA-> HALT -WUPA-> READY, with cascade levels for 7- and 10-byte UIDs. A card that
//! does not answer makes the chip's timer expire (TimerIRq), as on the real chip. Not
//! modelled: collisions between several cards, MIFARE authentication, the other commands.

use embedded_hal::spi::{ErrorKind, ErrorType, Operation, SpiDevice};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Registers (datasheet §9.2).
const COMMAND: u8 = 0x01;
const COM_IRQ: u8 = 0x04;
const DIV_IRQ: u8 = 0x05;
const ERROR: u8 = 0x06;
const FIFO_DATA: u8 = 0x09;
const FIFO_LEVEL: u8 = 0x0A;
const CONTROL: u8 = 0x0C;
const BIT_FRAMING: u8 = 0x0D;
const MODE: u8 = 0x11;
const TX_CONTROL: u8 = 0x14;
const CRC_HIGH: u8 = 0x21;
const CRC_LOW: u8 = 0x22;
const T_MODE: u8 = 0x2A;
const T_PRESCALER: u8 = 0x2B;
const T_RELOAD_HIGH: u8 = 0x2C;
const T_RELOAD_LOW: u8 = 0x2D;
const VERSION: u8 = 0x37;

// Commands (datasheet §10.3).
const CMD_IDLE: u8 = 0x0;
const CMD_CALC_CRC: u8 = 0x3;
const CMD_TRANSCEIVE: u8 = 0xC;
const CMD_SOFT_RESET: u8 = 0xF;

const TIMER_IRQ: u8 = 1 << 0;
const RX_IRQ: u8 = 1 << 5;
const IDLE_IRQ: u8 = 1 << 4;
const CRC_IRQ: u8 = 1 << 2;
const BUFFER_OVFL: u8 = 1 << 4;
const FIFO_SIZE: usize = 64;

// PICC commands (ISO 14443-3).
const REQA: u8 = 0x26;
const WUPA: u8 = 0x52;
const HLTA: u8 = 0x50;
const SEL: [u8; 3] = [0x93, 0x95, 0x97];
const CASCADE_TAG: u8 = 0x88;

/// CRC_A of ISO 14443-3 (x^16 + x^12 + x^5 + 1, reflected), from `preset`; low byte
/// first, as it is sent.
pub fn crc_a(preset: u16, data: &[u8]) -> [u8; 2] {
    let mut crc = preset;
    for &byte in data {
        let mut b = byte ^ (crc as u8);
        b ^= b << 4;
        let b = u16::from(b);
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4);
    }
    crc.to_le_bytes()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CardState {
    Idle,
    /// Between REQA/WUPA and the SELECT of the last cascade level.
    Ready(usize),
    Active,
    Halt,
}

#[derive(Debug)]
struct Card {
    uid: Vec<u8>,
    state: CardState,
}

impl Card {
    /// The 4 bytes of each cascade level (a cascade tag before 3 UID bytes if more follow).
    fn level(&self, n: usize) -> Option<[u8; 4]> {
        let u = &self.uid;
        let levels = match u.len() {
            4 => 1,
            7 => 2,
            10 => 3,
            _ => return None,
        };
        if n >= levels {
            return None;
        }
        Some(if n + 1 == levels {
            [u[3 * n], u[3 * n + 1], u[3 * n + 2], u[3 * n + 3]]
        } else {
            [CASCADE_TAG, u[3 * n], u[3 * n + 1], u[3 * n + 2]]
        })
    }

    fn levels(&self) -> usize {
        (self.uid.len() - 1) / 3
    }

    fn atqa(&self) -> [u8; 2] {
        match self.uid.len() {
            4 => [0x04, 0x00],
            7 => [0x44, 0x00],
            _ => [0x84, 0x00],
        }
    }

    /// What the card answers to a frame (`bits` valid bits in the last byte, 0 = 8).
    fn answer(&mut self, frame: &[u8], bits: u8) -> Option<Vec<u8>> {
        if bits == 7 && frame.len() == 1 {
            let wake = frame[0] == WUPA;
            let ok = match self.state {
                CardState::Idle => frame[0] == REQA || wake,
                CardState::Halt => wake,
                _ => false,
            };
            if ok {
                self.state = CardState::Ready(0);
                return Some(self.atqa().to_vec());
            }
            if self.state != CardState::Halt {
                self.state = CardState::Idle;
            }
            return None;
        }
        let reply = match (self.state, frame) {
            (CardState::Ready(n), [sel, 0x20]) if *sel == SEL[n] => {
                let cl = self.level(n)?;
                let bcc = cl.iter().fold(0, |a, b| a ^ b);
                Some(vec![cl[0], cl[1], cl[2], cl[3], bcc])
            }
            (CardState::Ready(n), [sel, 0x70, rest @ ..]) if *sel == SEL[n] && rest.len() == 7 => {
                let cl = self.level(n)?;
                let bcc = cl.iter().fold(0, |a, b| a ^ b);
                let crc_ok = crc_a(0x6363, &frame[..7]) == frame[7..9];
                if rest[..4] != cl || rest[4] != bcc || !crc_ok {
                    None
                } else {
                    let last = n + 1 == self.levels();
                    let sak = if last { 0x08 } else { 0x04 };
                    self.state = if last {
                        CardState::Active
                    } else {
                        CardState::Ready(n + 1)
                    };
                    let crc = crc_a(0x6363, &[sak]);
                    return Some(vec![sak, crc[0], crc[1]]);
                }
            }
            (CardState::Active, [HLTA, 0x00, c0, c1])
                if crc_a(0x6363, &[HLTA, 0]) == [*c0, *c1] =>
            {
                self.state = CardState::Halt;
                return None;
            }
            _ => None,
        };
        if reply.is_none() && self.state != CardState::Halt {
            self.state = CardState::Idle;
        }
        reply
    }
}

/// The antenna's field, shared with whoever plays the person holding the card.
#[derive(Debug, Clone, Default)]
pub struct Field(Arc<Mutex<Option<Card>>>);

impl Field {
    /// Puts a card on the antenna (a card taken away and put back starts powered off,
    /// in IDLE). Only 4-, 7- and 10-byte UIDs exist; others never answer.
    pub fn place(&self, uid: &[u8]) {
        if let Ok(mut card) = self.0.lock() {
            if card.as_ref().map(|c| c.uid.as_slice()) != Some(uid) {
                *card = Some(Card {
                    uid: uid.to_vec(),
                    state: CardState::Idle,
                });
            }
        }
    }

    pub fn remove(&self) {
        if let Ok(mut card) = self.0.lock() {
            *card = None;
        }
    }

    pub fn uid(&self) -> Option<Vec<u8>> {
        self.0.lock().ok()?.as_ref().map(|c| c.uid.clone())
    }
}

/// The simulated chip. `SimChip::absent()` is an SPI bus with nothing on it.
#[derive(Debug)]
pub struct SimChip {
    regs: [u8; 64],
    fifo: VecDeque<u8>,
    field: Field,
    timer_due: Option<Instant>,
    powered: bool,
    /// SPI transactions served (for the CPU measurement).
    pub transactions: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimSpiError;

impl embedded_hal::spi::Error for SimSpiError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// Where the chip is within one SPI transaction.
#[derive(Clone, Copy)]
enum Frame {
    Start,
    Read(u8),
    Write(u8),
}

impl SimChip {
    pub fn new(field: Field) -> SimChip {
        let mut chip = SimChip {
            regs: [0; 64],
            fifo: VecDeque::new(),
            field,
            timer_due: None,
            powered: true,
            transactions: 0,
        };
        chip.reset();
        chip
    }

    /// Nothing on the bus: every byte reads 0x00.
    pub fn absent() -> SimChip {
        SimChip {
            powered: false,
            ..SimChip::new(Field::default())
        }
    }

    /// Reset values of the registers the driver reads back (datasheet §9.3).
    fn reset(&mut self) {
        self.regs = [0; 64];
        self.regs[COMMAND as usize] = 0x20;
        self.regs[COM_IRQ as usize] = 0x14;
        self.regs[MODE as usize] = 0x3F;
        self.regs[TX_CONTROL as usize] = 0x80;
        self.regs[0x0E] = 0x80; // CollReg: ValuesAfterColl
        self.regs[0x24] = 0x26; // ModWidthReg
        self.regs[VERSION as usize] = 0x92;
        self.fifo.clear();
        self.timer_due = None;
    }

    /// The timer period: (2·TPrescaler + 1)·(TReload + 1) / 13.56 MHz.
    fn timer_period(&self) -> Duration {
        let prescaler = (u64::from(self.regs[T_MODE as usize] & 0x0F) << 8)
            | u64::from(self.regs[T_PRESCALER as usize]);
        let reload = (u64::from(self.regs[T_RELOAD_HIGH as usize]) << 8)
            | u64::from(self.regs[T_RELOAD_LOW as usize]);
        Duration::from_nanos((2 * prescaler + 1) * (reload + 1) * 1_000_000 / 13_560)
    }

    fn read(&mut self, reg: u8) -> u8 {
        match reg {
            FIFO_DATA => self.fifo.pop_front().unwrap_or(0),
            FIFO_LEVEL => self.fifo.len() as u8,
            COM_IRQ => {
                if self.timer_due.is_some_and(|t| Instant::now() >= t) {
                    self.timer_due = None;
                    self.regs[COM_IRQ as usize] |= TIMER_IRQ;
                }
                self.regs[COM_IRQ as usize]
            }
            _ => self.regs[reg as usize & 0x3F],
        }
    }

    fn write(&mut self, reg: u8, value: u8) {
        match reg {
            COMMAND => self.command(value & 0x0F),
            COM_IRQ | DIV_IRQ => {
                let r = &mut self.regs[reg as usize];
                if value & 0x80 != 0 {
                    *r |= value & 0x7F;
                } else {
                    *r &= !value;
                }
            }
            FIFO_DATA => {
                if self.fifo.len() < FIFO_SIZE {
                    self.fifo.push_back(value);
                } else {
                    self.regs[ERROR as usize] |= BUFFER_OVFL;
                }
            }
            FIFO_LEVEL => {
                if value & 0x80 != 0 {
                    self.fifo.clear();
                    self.regs[ERROR as usize] &= !BUFFER_OVFL;
                }
            }
            BIT_FRAMING => {
                self.regs[reg as usize] = value & 0x7F;
                let command = self.regs[COMMAND as usize] & 0x0F;
                if value & 0x80 != 0 && command == CMD_TRANSCEIVE {
                    self.transceive(value & 0x07);
                }
            }
            VERSION => {}
            _ => self.regs[reg as usize & 0x3F] = value,
        }
    }

    fn command(&mut self, command: u8) {
        match command {
            CMD_SOFT_RESET => self.reset(),
            CMD_CALC_CRC => {
                let preset = match self.regs[MODE as usize] & 0x03 {
                    0 => 0x0000,
                    1 => 0x6363,
                    2 => 0xA671,
                    _ => 0xFFFF,
                };
                let data: Vec<u8> = self.fifo.drain(..).collect();
                let [low, high] = crc_a(preset, &data);
                self.regs[CRC_LOW as usize] = low;
                self.regs[CRC_HIGH as usize] = high;
                self.regs[DIV_IRQ as usize] |= CRC_IRQ;
                self.regs[COMMAND as usize] = CMD_CALC_CRC;
            }
            CMD_IDLE => {
                self.timer_due = None;
                self.regs[COMMAND as usize] = CMD_IDLE;
                self.regs[COM_IRQ as usize] |= IDLE_IRQ;
            }
            other => self.regs[COMMAND as usize] = other,
        }
    }

    /// Sends the FIFO to the card and puts its answer in the FIFO, or starts the timer.
    fn transceive(&mut self, last_bits: u8) {
        let frame: Vec<u8> = self.fifo.drain(..).collect();
        let antenna_on = self.regs[TX_CONTROL as usize] & 0x03 == 0x03;
        let answer = if antenna_on {
            self.field
                .0
                .lock()
                .ok()
                .and_then(|mut card| card.as_mut().and_then(|c| c.answer(&frame, last_bits)))
        } else {
            None
        };
        match answer {
            Some(bytes) => {
                self.fifo.extend(bytes);
                self.regs[CONTROL as usize] &= !0x07;
                self.regs[ERROR as usize] = 0;
                self.regs[COM_IRQ as usize] |= RX_IRQ;
            }
            None => {
                // TAuto: the timer starts at the end of the transmission.
                if self.regs[T_MODE as usize] & 0x80 != 0 {
                    self.timer_due = Some(Instant::now() + self.timer_period());
                }
            }
        }
    }

    /// One byte clocked in both directions.
    fn clock(&mut self, frame: &mut Frame, mosi: u8) -> u8 {
        if !self.powered {
            return 0;
        }
        match *frame {
            Frame::Start => {
                let addr = (mosi >> 1) & 0x3F;
                *frame = if mosi & 0x80 != 0 {
                    Frame::Read(addr)
                } else {
                    Frame::Write(addr)
                };
                0
            }
            Frame::Read(addr) => {
                let out = self.read(addr);
                *frame = Frame::Read((mosi >> 1) & 0x3F);
                out
            }
            Frame::Write(addr) => {
                self.write(addr, mosi);
                0
            }
        }
    }
}

impl ErrorType for SimChip {
    type Error = SimSpiError;
}

impl SpiDevice for SimChip {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), SimSpiError> {
        self.transactions += 1;
        let mut frame = Frame::Start;
        for op in operations {
            match op {
                Operation::Write(bytes) => {
                    for &b in bytes.iter() {
                        self.clock(&mut frame, b);
                    }
                }
                Operation::Read(bytes) => {
                    for b in bytes.iter_mut() {
                        *b = self.clock(&mut frame, 0);
                    }
                }
                Operation::Transfer(read, write) => {
                    for i in 0..read.len().max(write.len()) {
                        let out = self.clock(&mut frame, write.get(i).copied().unwrap_or(0));
                        if let Some(r) = read.get_mut(i) {
                            *r = out;
                        }
                    }
                }
                Operation::TransferInPlace(bytes) => {
                    for b in bytes.iter_mut() {
                        *b = self.clock(&mut frame, *b);
                    }
                }
                Operation::DelayNs(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_a_matches_iso14443_examples() {
        // ISO/IEC 14443-3 Annex B: CRC_A of 0x00 0x00 is 0x1EA0 (sent A0 1E);
        // HLTA 50 00 is followed by 57 CD on the air.
        assert_eq!(crc_a(0x6363, &[0x00, 0x00]), [0xA0, 0x1E]);
        assert_eq!(crc_a(0x6363, &[0x50, 0x00]), [0x57, 0xCD]);
    }

    #[test]
    fn register_reads_shift_one_byte() {
        let mut chip = SimChip::new(Field::default());
        let mut buf = [0x80 | (VERSION << 1), 0x80 | (VERSION << 1), 0];
        chip.transfer_in_place(&mut buf).unwrap();
        assert_eq!(buf[1..], [0x92, 0x92]);
        let mut buf = [0x80 | (VERSION << 1), 0];
        SimChip::absent().transfer_in_place(&mut buf).unwrap();
        assert_eq!(buf[1], 0);
    }
}
