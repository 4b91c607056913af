//! The boards' USB-to-UART bridges, and the fastest baud rate a bridge and the device agree on.
//!
//! The device makes its bit time from whole clocks (`clks_per_bit = round(clock_hz / baud)`); an
//! FTDI bridge makes its bit rate from a fixed base divided by a divisor in eighths. The two
//! rates differ unless both divide evenly, and the difference is what eats the receivers' sampling
//! margin. [`UsbUart::fastest_clean_baud`] finds the fastest rate the bridge makes exactly
//! (so the host asks for exactly that number) for which the device's rate is within
//! [`CLEAN_MISMATCH_PERMILLE`] of it.
//!
//! Divisors follow Linux's `ftdi_sio` driver: `ftdi_232bm_baud_base_to_divisor` (48 MHz clock,
//! 3 MBd base) for the FT231X, `ftdi_2232h_baud_base_to_divisor` (120 MHz clock, 12 MBd base) for
//! the FT2232H at 1200 baud and above. A divisor is `n + k/8` with `n ≥ 2`, or exactly 1 or 1.5
//! (the chips have no other divisors below 2: FTDI AN232B-05).

use serde::Serialize;
use smartdeal_core::protocol::BoardLink;

/// Largest difference between the bridge's and the device's bit rate called clean, in per
/// mille of the bridge's: half of [`BoardLink::MAX_BAUD_ERR_PERMILLE`], so that the crystals'
/// tolerances and the receivers' sampling granularity (up to 1/4 bit at 4 clocks per bit) keep
/// margin within the ≈ 5 % a 10-bit frame sampled mid-bit can drift.
pub const CLEAN_MISMATCH_PERMILLE: u32 = 10;

/// Slowest rate [`UsbUart::fastest_clean_baud`] considers.
const SLOWEST_BAUD: f64 = 9600.0;

/// A board's USB-to-UART bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsbUart {
    /// FTDI FT2232H (iCEBreaker: its second interface is the FPGA's UART), up to 12 MBd.
    Ft2232h,
    /// FTDI FT231X (ULX3S), up to 3 MBd.
    Ft231x,
}

/// The fastest clean setting of a bridge and a device clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CleanBaud {
    /// What to pass as `--baud` to both `fpga build` and `run`: the bridge makes exactly this
    /// rate (± its rounding to an integer).
    pub baud: u32,
    /// The bridge's bit rate.
    pub bridge_baud: f64,
    /// The device's `round(clock_hz / baud)`.
    pub clks_per_bit: u32,
    /// The device's bit rate, `clock_hz / clks_per_bit`.
    pub device_baud: f64,
    /// `|device_baud - bridge_baud| / bridge_baud`, in per mille.
    pub mismatch_permille: f64,
}

impl UsbUart {
    /// Name as FTDI writes it.
    pub fn name(self) -> &'static str {
        match self {
            UsbUart::Ft2232h => "FT2232H",
            UsbUart::Ft231x => "FT231X",
        }
    }

    /// The rate at divisor 1, in baud.
    fn base_baud(self) -> u32 {
        match self {
            UsbUart::Ft2232h => 12_000_000,
            UsbUart::Ft231x => 3_000_000,
        }
    }

    /// Whether `eighths / 8` is a divisor the chip has: 1, 1.5, or 2 up to the 14-bit integer
    /// part's 16383.875.
    fn divisor_exists(eighths: u64) -> bool {
        eighths == 8 || eighths == 12 || (16..=16_383 * 8 + 7).contains(&eighths)
    }

    /// The divisor, in eighths, the driver picks for `baud`: `round(8 × base / baud)`.
    fn divisor_for(self, baud: u32) -> u64 {
        let base8 = 8 * u64::from(self.base_baud());
        let baud = u64::from(baud.max(1));
        (base8 + baud / 2) / baud
    }

    /// The bit rate the bridge makes when the host asks for `baud`, or `None` when no divisor
    /// gives it (faster than the chip, or between its divisors 1, 1.5 and 2).
    pub fn actual_baud(self, baud: u32) -> Option<f64> {
        // The driver refuses rates over the base rather than round them down to divisor 1.
        if baud > self.base_baud() {
            return None;
        }
        let eighths = self.divisor_for(baud);
        Self::divisor_exists(eighths).then(|| self.baud_of(eighths))
    }

    /// The rate of a divisor of `eighths / 8`.
    fn baud_of(self, eighths: u64) -> f64 {
        8.0 * f64::from(self.base_baud()) / eighths as f64
    }

    /// The fastest rate this bridge makes exactly whose device side, at `clock_hz`, passes
    /// [`BoardLink::validate`] and is within [`CLEAN_MISMATCH_PERMILLE`] of it; `None` when
    /// nothing from the chip's fastest rate down to 9600 baud is.
    pub fn fastest_clean_baud(self, clock_hz: u32) -> Option<CleanBaud> {
        // Divisors from the smallest (fastest rate) up; each rate is exact on the bridge.
        (8..)
            .filter(|&e| Self::divisor_exists(e))
            .map(|e| (e, self.baud_of(e)))
            .take_while(|&(_, rate)| rate >= SLOWEST_BAUD)
            .find_map(|(eighths, rate)| {
                let baud = rate.round() as u32;
                // The host asks for the rounded rate; it must come back to the same divisor.
                if self.divisor_for(baud) != eighths {
                    return None;
                }
                let link = BoardLink {
                    baud,
                    ..BoardLink::uart(clock_hz)
                };
                link.validate().ok()?;
                let clks_per_bit = link.clks_per_bit();
                let device_baud = f64::from(clock_hz) / f64::from(clks_per_bit);
                let mismatch_permille = 1000.0 * (device_baud - rate).abs() / rate;
                (mismatch_permille <= f64::from(CLEAN_MISMATCH_PERMILLE)).then_some(CleanBaud {
                    baud,
                    bridge_baud: rate,
                    clks_per_bit,
                    device_baud,
                    mismatch_permille,
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rates FTDI documents for its divisor scheme (AN232B-05 and the FT231X / FT2232H
    /// datasheets): 115200 on the 3 MBd base is divisor 26 (115,385 baud, +0.16 %); 3 and 2 MBd
    /// are the special divisors 1 and 1.5; the FT2232H's 12 MBd base makes 12, 8 and 6 MBd.
    #[test]
    fn actual_rates_follow_the_divisor_scheme() {
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1.0;
        assert!(close(UsbUart::Ft231x.actual_baud(115_200), 3e6 / 26.0));
        assert!(close(UsbUart::Ft231x.actual_baud(3_000_000), 3e6));
        assert!(close(UsbUart::Ft231x.actual_baud(2_000_000), 2e6));
        assert!(close(UsbUart::Ft231x.actual_baud(1_000_000), 1e6));
        assert_eq!(UsbUart::Ft231x.actual_baud(4_000_000), None, "over 3 MBd");
        assert_eq!(UsbUart::Ft231x.actual_baud(3_100_000), None, "over 3 MBd");
        // 2.5 MBd would need divisor 1.2: the chip has none between 1.5 and 2.
        assert_eq!(UsbUart::Ft231x.actual_baud(2_500_000), None);
        for (ask, get) in [(12e6, 12e6), (8e6, 8e6), (6e6, 6e6), (3e6, 3e6)] {
            assert!(
                close(UsbUart::Ft2232h.actual_baud(ask as u32), get),
                "{ask}"
            );
        }
        assert_eq!(UsbUart::Ft2232h.actual_baud(12_500_000), None);
    }

    /// Worked by hand (docs/protocol.md): the iCEBreaker at 12 MHz runs 3 MBd at 4 clocks per
    /// bit, exact on both sides. The ULX3S at 25 MHz: the FT231X's faster rates 3 M, 2 M, 1.5 M,
    /// 1.412 M, 1.333 M, 1.263 M are 4.2, 3.8, 2.0, 1.6, 1.3, 1.04 % from 25 MHz / 8, 13, 17, 18,
    /// 19, 20; 1.2 MBd is 0.79 % from 25 MHz / 21.
    #[test]
    fn fastest_clean_rates_of_the_boards() {
        let ice = UsbUart::Ft2232h.fastest_clean_baud(12_000_000).unwrap();
        assert_eq!((ice.baud, ice.clks_per_bit), (3_000_000, 4));
        assert_eq!(ice.mismatch_permille, 0.0);
        let ulx = UsbUart::Ft231x.fastest_clean_baud(25_000_000).unwrap();
        assert_eq!((ulx.baud, ulx.clks_per_bit), (1_200_000, 21));
        assert!((ulx.mismatch_permille - 7.94).abs() < 0.01, "{ulx:?}");
    }

    /// Over many clocks: the answer passes the rules, and every faster rate the bridge makes
    /// fails one of them.
    #[test]
    fn nothing_faster_is_clean() {
        for uart in [UsbUart::Ft2232h, UsbUart::Ft231x] {
            for clock_hz in (1_000_000..=100_000_000).step_by(1_234_567) {
                let Some(c) = uart.fastest_clean_baud(clock_hz) else {
                    panic!("{uart:?} at {clock_hz} Hz: no clean rate");
                };
                let link = BoardLink {
                    baud: c.baud,
                    ..BoardLink::uart(clock_hz)
                };
                assert!(link.validate().is_ok());
                assert!(c.mismatch_permille <= f64::from(CLEAN_MISMATCH_PERMILLE));
                assert_eq!(uart.actual_baud(c.baud), Some(c.bridge_baud));
                let faster = (8..uart.divisor_for(c.baud))
                    .filter(|&e| UsbUart::divisor_exists(e))
                    .map(|e| uart.baud_of(e).round() as u32);
                for b in faster {
                    let link = BoardLink {
                        baud: b,
                        ..BoardLink::uart(clock_hz)
                    };
                    let device = f64::from(clock_hz) / f64::from(link.clks_per_bit().max(1));
                    let bridge = uart.actual_baud(b).unwrap();
                    assert!(
                        link.validate().is_err()
                            || 1000.0 * (device - bridge).abs() / bridge
                                > f64::from(CLEAN_MISMATCH_PERMILLE),
                        "{uart:?} at {clock_hz} Hz: {b} is faster and clean, {c:?}"
                    );
                }
            }
        }
    }
}
