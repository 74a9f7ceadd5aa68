//! What a reader drives: a buzzer and an LED for feedback, and a relay that powers a
//! machine. GPIO through rppal (feature `hw`); without pins the feedback is a log line
//! and the relay a file holding "on"/"off" (tests read it), so every path runs off-Pi.

use super::{Error, Result};
use crate::config::ReaderConfig;
use std::path::PathBuf;

/// What a tap led to, as the person at the reader should hear and see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Signed in, machine started.
    Welcome,
    /// Signed out, machine stopped.
    Bye,
    /// Refused (unknown card, not authorized, machine busy, nobody else in…).
    Denied,
    /// Something broke (database, machine missing).
    Fault,
}

/// Buzzer and LED of a reader. Patterns run without blocking the poll loop: `signal`
/// switches them on, `tick` switches them off when the pattern is over.
pub trait Feedback: Send {
    fn signal(&mut self, signal: Signal, now_ms: i64);
    fn tick(&mut self, now_ms: i64);
}

/// A machine's power relay.
pub trait Relay: Send {
    fn set(&mut self, on: bool) -> Result<()>;
    fn is_on(&self) -> bool;
}

/// Feedback as log lines (readers without buzzer or LED).
pub struct LogFeedback {
    name: String,
}

impl Feedback for LogFeedback {
    fn signal(&mut self, signal: Signal, _now_ms: i64) {
        log::debug!("reader {}: feedback {signal:?}", self.name);
    }
    fn tick(&mut self, _now_ms: i64) {}
}

/// A relay simulated by a file (or only by log lines when no file is configured).
pub struct FileRelay {
    name: String,
    path: Option<PathBuf>,
    on: bool,
}

impl FileRelay {
    pub fn new(name: &str, path: Option<PathBuf>) -> Result<FileRelay> {
        let mut r = FileRelay {
            name: name.into(),
            path,
            on: true,
        };
        r.set(false)?;
        Ok(r)
    }
}

impl Relay for FileRelay {
    fn set(&mut self, on: bool) -> Result<()> {
        if on == self.on {
            return Ok(());
        }
        if let Some(path) = &self.path {
            std::fs::write(path, if on { "on\n" } else { "off\n" }).map_err(|source| {
                Error::Io {
                    path: path.display().to_string(),
                    source,
                }
            })?;
        }
        self.on = on;
        // A reader's name, not a person's.
        let reader = &self.name;
        log::info!("reader {reader}: relay {}", if on { "on" } else { "off" });
        Ok(())
    }

    fn is_on(&self) -> bool {
        self.on
    }
}

#[cfg(feature = "hw")]
mod gpio {
    use super::*;
    use rppal::gpio::{Gpio, OutputPin};

    fn pin(n: u8) -> Result<OutputPin> {
        Gpio::new()
            .and_then(|g| g.get(n))
            .map(|p| p.into_output_low())
            .map_err(|e| Error::Gpio(format!("GPIO {n}: {e}")))
    }

    pub struct GpioFeedback {
        buzzer: Option<OutputPin>,
        led: Option<OutputPin>,
        buzzer_off: i64,
        led_off: i64,
    }

    impl GpioFeedback {
        pub fn open(buzzer: Option<u8>, led: Option<u8>) -> Result<GpioFeedback> {
            Ok(GpioFeedback {
                buzzer: buzzer.map(pin).transpose()?,
                led: led.map(pin).transpose()?,
                buzzer_off: 0,
                led_off: 0,
            })
        }
    }

    impl Feedback for GpioFeedback {
        fn signal(&mut self, signal: Signal, now_ms: i64) {
            // (buzzer ms, LED ms): a short beep and a long light for yes, a long beep for no.
            let (beep, light) = match signal {
                Signal::Welcome => (80, 1500),
                Signal::Bye => (80, 300),
                Signal::Denied => (700, 0),
                Signal::Fault => (1500, 0),
            };
            if let Some(b) = &mut self.buzzer {
                b.set_high();
                self.buzzer_off = now_ms + beep;
            }
            if let (Some(l), true) = (&mut self.led, light > 0) {
                l.set_high();
                self.led_off = now_ms + light;
            }
        }

        fn tick(&mut self, now_ms: i64) {
            if now_ms >= self.buzzer_off {
                if let Some(b) = &mut self.buzzer {
                    b.set_low();
                }
            }
            if now_ms >= self.led_off {
                if let Some(l) = &mut self.led {
                    l.set_low();
                }
            }
        }
    }

    pub struct GpioRelay {
        pin: OutputPin,
        active_low: bool,
        on: bool,
    }

    impl GpioRelay {
        pub fn open(n: u8, active_low: bool) -> Result<GpioRelay> {
            let mut r = GpioRelay {
                pin: pin(n)?,
                active_low,
                on: true,
            };
            r.set(false)?;
            Ok(r)
        }
    }

    impl Relay for GpioRelay {
        fn set(&mut self, on: bool) -> Result<()> {
            if on != self.active_low {
                self.pin.set_high();
            } else {
                self.pin.set_low();
            }
            self.on = on;
            Ok(())
        }

        fn is_on(&self) -> bool {
            self.on
        }
    }
}

/// The feedback outputs a reader's config names.
pub fn open_feedback(cfg: &ReaderConfig) -> Result<Box<dyn Feedback>> {
    if cfg.buzzer_pin.is_none() && cfg.led_pin.is_none() {
        return Ok(Box::new(LogFeedback {
            name: cfg.name.clone(),
        }));
    }
    #[cfg(feature = "hw")]
    {
        Ok(Box::new(gpio::GpioFeedback::open(
            cfg.buzzer_pin,
            cfg.led_pin,
        )?))
    }
    #[cfg(not(feature = "hw"))]
    Err(Error::NoHardware("buzzer/LED"))
}

/// The relay a machine reader's config names: a GPIO pin, else a file, else log lines.
pub fn open_relay(cfg: &ReaderConfig) -> Result<Box<dyn Relay>> {
    match cfg.relay_pin {
        #[cfg(feature = "hw")]
        Some(pin) => Ok(Box::new(gpio::GpioRelay::open(pin, cfg.relay_active_low)?)),
        #[cfg(not(feature = "hw"))]
        Some(_) => Err(Error::NoHardware("relay")),
        None => Ok(Box::new(FileRelay::new(&cfg.name, cfg.relay_file.clone())?)),
    }
}
