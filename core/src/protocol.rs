//! The board link protocol's vocabulary (docs/protocol.md), shared by the generated protocol
//! engine (`smartdeal_gen`) and the host driver (`smartdeal_host`), so neither needs the other
//! and the two cannot drift apart: frame constants, commands, error codes, status flags, the
//! accelerator's host-interface opcodes (docs/interface.md), the serial-link parameters
//! ([`BoardLink`]), the engine's configuration-dependent sizes ([`LinkSizes`]) and the
//! IDENTIFY payload.

use crate::params::clog2;
use crate::pll::Pll;
use crate::{AccelConfig, WeightRequant};
use serde::Serialize;

/// Protocol version, reported by IDENTIFY. Bump on any incompatible change.
pub const VERSION: u8 = 1;
/// First byte of every host→device frame.
pub const SYNC_REQ: u8 = 0xA5;
/// First byte of every device→host frame (different from [`SYNC_REQ`], so an echoing
/// line is never mistaken for a reply).
pub const SYNC_RSP: u8 = 0x5A;
/// Magic at the start of the IDENTIFY payload.
pub const MAGIC: [u8; 2] = *b"SD";
/// Bytes per tunnelled host-interface command in a WRITE payload: op, addr (BE), data (BE).
pub const CMD_BYTES: usize = 7;
/// Length of the STATUS payload (also carried by WRITE/RUN acknowledgements and NAKs).
pub const STATUS_LEN: usize = 7;
/// Response code of a NAK (the error code is in the status payload).
pub const RSP_NAK: u8 = 0xFF;
/// Response code of a successful reply: the request's command with bit 7 set.
pub const RSP_OK_BIT: u8 = 0x80;

/// Commands (the second byte of a request frame).
pub mod cmd {
    pub const IDENTIFY: u8 = 0x01;
    pub const STATUS: u8 = 0x02;
    pub const WRITE: u8 = 0x03;
    pub const RUN: u8 = 0x04;
    pub const READ: u8 = 0x05;
}

/// Error codes (status byte 1: the last error; a NAK carries the error it answers).
pub mod err {
    pub const NONE: u8 = 0;
    /// A byte with a bad stop bit.
    pub const FRAMING: u8 = 1;
    /// The frame's CRC-8 did not match.
    pub const BAD_CRC: u8 = 2;
    /// Unknown command byte.
    pub const UNKNOWN_CMD: u8 = 3;
    /// Length over the device's maximum, or wrong for the command.
    pub const BAD_LEN: u8 = 4;
    /// A frame stopped half-way for longer than the inter-byte timeout.
    pub const TIMEOUT: u8 = 5;
    /// READ range outside the output buffer.
    pub const BAD_ARG: u8 = 6;
    /// WRITE or RUN while the accelerator is busy (nothing executed).
    pub const BUSY: u8 = 7;

    /// Name of an error code, for messages.
    pub fn name(code: u8) -> &'static str {
        match code {
            NONE => "none",
            FRAMING => "framing error (bad stop bit)",
            BAD_CRC => "bad checksum",
            UNKNOWN_CMD => "unknown command",
            BAD_LEN => "bad length",
            TIMEOUT => "inter-byte timeout",
            BAD_ARG => "bad argument",
            BUSY => "accelerator busy",
            _ => "unknown error code",
        }
    }
}

/// Status flag bits (status byte 0).
pub mod flag {
    pub const BUSY: u8 = 1;
    pub const DONE: u8 = 2;
    pub const ERR: u8 = 4;
}

/// One step of CRC-8 (polynomial x^8 + x^2 + x + 1 = 0x07, MSB first, initial value 0,
/// no final xor: CRC-8/SMBUS). Linear in `crc ^ byte`, which the hardware exploits.
pub fn crc8_update(crc: u8, byte: u8) -> u8 {
    let mut c = crc ^ byte;
    for _ in 0..8 {
        c = if c & 0x80 != 0 {
            (c << 1) ^ 0x07
        } else {
            c << 1
        };
    }
    c
}

/// CRC-8 of a byte string.
pub fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |c, &b| crc8_update(c, b))
}

/// Command opcodes (cmd_op_i), documented in docs/interface.md.
pub mod op {
    pub const NOP: u32 = 0;
    pub const PUSH: u32 = 1;
    pub const WR_ACT: u32 = 2;
    pub const WR_COEF: u32 = 3;
    pub const WR_B: u32 = 4;
    pub const WR_WSHIFT: u32 = 5;
    pub const WR_OPARAM: u32 = 6;
    pub const START: u32 = 7;
}

/// Clock and serial-link parameters of a board build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardLink {
    /// Frequency of the core clock, in Hz: `clk_i` itself, or the PLL's output when [`pll`]
    /// is set (then it must be the PLL's output frequency).
    ///
    /// [`pll`]: BoardLink::pll
    pub clock_hz: u32,
    /// UART bit rate (8N1).
    pub baud: u32,
    /// A frame that stays silent this long half-way is dropped (with a TIMEOUT reply), in µs.
    pub timeout_us: u32,
    /// `led_o` bits whose LED lights on a low pin (bit i set: `led_o[i]` is inverted), so that
    /// every status LED is lit when its signal is 1 (iCEBreaker: 0b0011, its red and green LEDs
    /// are active low). Only the low [`LED_COUNT`] bits may be set.
    pub led_active_low: u8,
    /// A PLL between the board clock `clk_i` and the core (`None`: the core runs on `clk_i`).
    /// The core is held in reset until the PLL reports lock, and again whenever it loses it.
    pub pll: Option<Pll>,
}

/// Width of the board top's `led_o`.
pub const LED_COUNT: u32 = 4;

/// Why a [`BoardLink`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("clock_hz must be positive")]
    ZeroClock,
    #[error("baud must be positive")]
    ZeroBaud,
    #[error("led_active_low {0:#b} names LEDs beyond the board top's {LED_COUNT}")]
    LedMask(u8),
    #[error(
        "baud {baud} is too fast for a {clock_hz} Hz clock: {clks_per_bit} clocks per bit, the \
         receiver needs at least {min} (mid-bit sampling behind a 2-flop synchronizer)"
    )]
    TooFast {
        clock_hz: u32,
        baud: u32,
        clks_per_bit: u32,
        min: u32,
    },
    #[error(
        "baud {baud} is too slow for a {clock_hz} Hz clock: {clks_per_bit} clocks per bit, at \
         most {max} supported"
    )]
    TooSlow {
        clock_hz: u32,
        baud: u32,
        clks_per_bit: u32,
        max: u32,
    },
    #[error(
        "baud {baud} from a {clock_hz} Hz clock: {clks_per_bit} clocks per bit give {actual} \
         baud, {err_permille}‰ off (at most {max_permille}‰ keeps the sampling point within the \
         bit over a frame)"
    )]
    BaudError {
        clock_hz: u32,
        baud: u32,
        clks_per_bit: u32,
        actual: u32,
        err_permille: u32,
        max_permille: u32,
    },
    #[error(
        "timeout_us {timeout_us} is {clocks} clocks, shorter than {min_bytes} byte times \
         ({min} clocks): a slow but healthy host would be cut off"
    )]
    TimeoutTooShort {
        timeout_us: u32,
        clocks: u64,
        min_bytes: u32,
        min: u64,
    },
    #[error("timeout_us {timeout_us} is {clocks} clocks, more than the 2^28 supported")]
    TimeoutTooLong { timeout_us: u32, clocks: u64 },
    #[error(
        "clock_hz {clock_hz} is not the PLL's output ({pll_hz} Hz): the UART divisor and the \
         timeout would be computed for the wrong clock"
    )]
    PllClockMismatch { clock_hz: u32, pll_hz: u32 },
}

impl BoardLink {
    /// Smallest clocks per bit: the start edge is seen 2-3 cycles late behind the synchronizer,
    /// so with fewer the mid-bit sample drifts into the bit edge.
    pub const MIN_CLKS_PER_BIT: u32 = 4;
    /// Largest clocks per bit (16-bit field in IDENTIFY).
    pub const MAX_CLKS_PER_BIT: u32 = 65535;
    /// Largest baud error, in per mille: a frame is 10 bits, sampled mid-bit, so the sampling
    /// point may drift 1/2 bit over 9.5 bits (5 %); keep well inside half of that for the other
    /// side's error.
    pub const MAX_BAUD_ERR_PERMILLE: u32 = 20;
    /// The inter-byte timeout must cover at least this many byte times.
    pub const MIN_TIMEOUT_BYTES: u32 = 4;

    /// The common board setting: 115200 baud, 10 ms timeout.
    pub fn uart(clock_hz: u32) -> BoardLink {
        BoardLink {
            clock_hz,
            baud: 115_200,
            timeout_us: 10_000,
            led_active_low: 0,
            pll: None,
        }
    }

    /// [`BoardLink::uart`] at the output of `pll`.
    pub fn uart_with_pll(pll: Pll) -> BoardLink {
        BoardLink {
            pll: Some(pll),
            ..BoardLink::uart(pll.out_hz())
        }
    }

    /// A fast setting for simulation: 8 clocks per bit at a nominal 1 MHz, 2 ms timeout
    /// (25 byte times).
    pub fn simulation() -> BoardLink {
        BoardLink {
            clock_hz: 1_000_000,
            baud: 125_000,
            timeout_us: 2_000,
            led_active_low: 0,
            pll: None,
        }
    }

    /// `round(clock_hz / baud)`.
    pub fn clks_per_bit(&self) -> u32 {
        ((u64::from(self.clock_hz) + u64::from(self.baud) / 2) / u64::from(self.baud.max(1))) as u32
    }

    /// The inter-byte timeout in clock cycles.
    pub fn timeout_clks(&self) -> u64 {
        u64::from(self.timeout_us) * u64::from(self.clock_hz) / 1_000_000
    }

    /// Checks the parameters; the error says which and why.
    pub fn validate(&self) -> Result<(), LinkError> {
        if self.clock_hz == 0 {
            return Err(LinkError::ZeroClock);
        }
        if let Some(pll) = &self.pll {
            if pll.out_hz() != self.clock_hz {
                return Err(LinkError::PllClockMismatch {
                    clock_hz: self.clock_hz,
                    pll_hz: pll.out_hz(),
                });
            }
        }
        if u32::from(self.led_active_low) >> LED_COUNT != 0 {
            return Err(LinkError::LedMask(self.led_active_low));
        }
        if self.baud == 0 {
            return Err(LinkError::ZeroBaud);
        }
        let cpb = self.clks_per_bit();
        if cpb < Self::MIN_CLKS_PER_BIT {
            return Err(LinkError::TooFast {
                clock_hz: self.clock_hz,
                baud: self.baud,
                clks_per_bit: cpb,
                min: Self::MIN_CLKS_PER_BIT,
            });
        }
        if cpb > Self::MAX_CLKS_PER_BIT {
            return Err(LinkError::TooSlow {
                clock_hz: self.clock_hz,
                baud: self.baud,
                clks_per_bit: cpb,
                max: Self::MAX_CLKS_PER_BIT,
            });
        }
        let actual = self.clock_hz / cpb;
        let err =
            (i64::from(actual) - i64::from(self.baud)).unsigned_abs() * 1000 / u64::from(self.baud);
        if err > u64::from(Self::MAX_BAUD_ERR_PERMILLE) {
            return Err(LinkError::BaudError {
                clock_hz: self.clock_hz,
                baud: self.baud,
                clks_per_bit: cpb,
                actual,
                err_permille: err as u32,
                max_permille: Self::MAX_BAUD_ERR_PERMILLE,
            });
        }
        let clocks = self.timeout_clks();
        let min = u64::from(Self::MIN_TIMEOUT_BYTES) * 10 * u64::from(cpb);
        if clocks < min {
            return Err(LinkError::TimeoutTooShort {
                timeout_us: self.timeout_us,
                clocks,
                min_bytes: Self::MIN_TIMEOUT_BYTES,
                min,
            });
        }
        if clocks > 1 << 28 {
            return Err(LinkError::TimeoutTooLong {
                timeout_us: self.timeout_us,
                clocks,
            });
        }
        Ok(())
    }

    /// One line for file headers.
    pub fn config_line(&self) -> String {
        let pll = match &self.pll {
            Some(p) => format!(" pll: {}", p.config_line()),
            None => String::new(),
        };
        format!(
            "clock_hz={} baud={} clks_per_bit={} timeout_us={} ({} clocks) led_active_low={:#06b}{pll}",
            self.clock_hz,
            self.baud,
            self.clks_per_bit(),
            self.timeout_us,
            self.timeout_clks(),
            self.led_active_low
        )
    }
}

/// Sizes of the protocol engine that depend on the accelerator configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LinkSizes {
    /// Depth of the WRITE payload buffer in bytes (a power of two, ≥ 256).
    pub buf_depth: u32,
    /// Most host-interface commands in one WRITE frame: ⌊buf_depth / 7⌋. At least one whole
    /// buffer word (all its PUSHes and the WR_*) fits, so a host never has to split a word
    /// across frames (which keeps retried WRITEs idempotent).
    pub max_cmds: u32,
}

impl LinkSizes {
    pub fn of(cfg: &AccelConfig) -> LinkSizes {
        let word_cmds = cfg.staging_bits() / 32 + 1;
        let need = (CMD_BYTES as u64) * u64::from(word_cmds);
        let buf_depth = need.next_power_of_two().max(256) as u32;
        LinkSizes {
            buf_depth,
            max_cmds: buf_depth / CMD_BYTES as u32,
        }
    }

    /// Largest request payload in bytes.
    pub fn max_payload(&self) -> u32 {
        self.max_cmds * CMD_BYTES as u32
    }

    pub fn buf_addr_bits(&self) -> u32 {
        clog2(u64::from(self.buf_depth))
    }
}

/// The IDENTIFY payload the generated device answers with (docs/protocol.md). All multi-byte
/// fields are big-endian.
pub fn identify_payload(cfg: &AccelConfig, link: &BoardLink) -> Vec<u8> {
    let fp = u64::from_str_radix(&cfg.fingerprint(), 16).expect("fingerprint is 16 hex digits");
    let sizes = LinkSizes::of(cfg);
    let mut v = Vec::new();
    v.extend_from_slice(&MAGIC);
    v.push(VERSION);
    v.extend_from_slice(&fp.to_be_bytes());
    for b in [
        cfg.lanes,
        cfg.act_bits,
        cfg.basis_bits,
        cfg.exp_bits,
        cfg.acc_bits,
    ] {
        v.push(b as u8);
    }
    // Weight mode byte: 0 SmartDeal int8, 1 SmartDeal exact, 2 dense int8 baseline.
    v.push(match (cfg.is_dense(), cfg.weight_requant) {
        (true, _) => 2,
        (false, WeightRequant::Int8) => 0,
        (false, WeightRequant::Exact) => 1,
    });
    for d in [
        cfg.rows_per_block,
        cfg.act_depth,
        cfg.coef_depth,
        cfg.b_depth,
        cfg.out_depth,
        sizes.max_cmds,
        link.clks_per_bit(),
    ] {
        v.extend_from_slice(&(d.min(0xffff) as u16).to_be_bytes());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc8_check_value() {
        // CRC-8/SMBUS check value of "123456789".
        assert_eq!(crc8(b"123456789"), 0xF4);
    }

    #[test]
    fn link_validation() {
        assert!(BoardLink::uart(12_000_000).validate().is_ok());
        assert!(BoardLink::uart(25_000_000).validate().is_ok());
        assert!(BoardLink::simulation().validate().is_ok());
        assert_eq!(BoardLink::uart(12_000_000).clks_per_bit(), 104);
        let e = BoardLink {
            clock_hz: 400_000,
            baud: 115_200,
            timeout_us: 10_000,
            led_active_low: 0,
            pll: None,
        }
        .validate()
        .unwrap_err();
        assert!(matches!(e, LinkError::TooFast { .. }), "{e}");
        // 1 MHz / 115200: 9 clocks per bit → 111111 baud, 3.5 % off.
        let e = BoardLink::uart(1_000_000).validate().unwrap_err();
        assert!(e.to_string().contains("‰ off"), "{e}");
        let mut l = BoardLink::simulation();
        l.timeout_us = 100;
        assert!(matches!(
            l.validate(),
            Err(LinkError::TimeoutTooShort { .. })
        ));
        l.baud = 0;
        assert_eq!(l.validate(), Err(LinkError::ZeroBaud));
    }

    #[test]
    fn sizes_fit_a_whole_word() {
        for p in crate::params::PRESETS {
            let cfg = AccelConfig::preset(p).unwrap();
            let s = LinkSizes::of(&cfg);
            assert!(s.max_cmds > cfg.staging_bits() / 32, "{p}");
            assert!(s.max_payload() <= s.buf_depth);
            assert!(s.max_payload() < 1 << 16);
        }
        let s = LinkSizes::of(&AccelConfig::preset("tiny").unwrap());
        assert_eq!((s.buf_depth, s.max_cmds), (256, 36));
    }
}
