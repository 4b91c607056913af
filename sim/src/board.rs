//! A simulated board: the generated `sd_board_top` in Verilator, seen through its pins only.
//! The host's bytes are driven onto `uart_rx_i` bit by bit (8N1 at the build's clocks per bit)
//! and `uart_tx_o` is sampled every clock and decoded by a software UART receiver, so the host
//! driver (`smartdeal_host::link`) runs unchanged against the RTL of the UART, the protocol engine and
//! the accelerator.

use crate::bridge;
use crate::harness::{self, Clocked, CosimError};
use smartdeal_core::protocol::BoardLink;
use smartdeal_core::AccelConfig;
use smartdeal_gen::{generate_board, GenOptions};
use smartdeal_host::link::{Transport, TransportError};
use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

/// Software UART receiver state for `uart_tx_o`.
#[derive(Debug, Clone, Copy)]
enum RxState {
    /// Waiting for a falling edge (after the line has been high).
    Idle { armed: bool },
    /// Receiving: `bit` 0 start, 1..8 data, 9 stop; `wait` clocks to the next sample.
    Bit { bit: u8, wait: u32, shift: u8 },
}

/// One clock of the software UART receiver: a start on a falling edge (the line must have been
/// high before), each bit sampled in its middle. Returns the new state and, after a stop bit,
/// the byte (or `Err` for a bad stop bit).
fn rx_step(st: RxState, line: bool, cpb: u32) -> (RxState, Option<Result<u8, ()>>) {
    let next = match st {
        // The first low cycle: the middle of the start bit is cpb/2 clocks later.
        RxState::Idle { armed } if armed && !line => RxState::Bit {
            bit: 0,
            wait: cpb / 2,
            shift: 0,
        },
        RxState::Idle { .. } => RxState::Idle { armed: line },
        RxState::Bit { bit, wait, shift } if wait > 1 => RxState::Bit {
            bit,
            wait: wait - 1,
            shift,
        },
        // The start bit is high again at its middle: a glitch.
        RxState::Bit { bit: 0, .. } if line => RxState::Idle { armed: true },
        RxState::Bit { bit, shift, .. } if bit < 9 => RxState::Bit {
            bit: bit + 1,
            wait: cpb,
            shift: if bit == 0 {
                0
            } else {
                shift | (u8::from(line) << (bit - 1))
            },
        },
        RxState::Bit { shift, .. } => {
            let out = if line { Ok(shift) } else { Err(()) };
            return (RxState::Idle { armed: line }, Some(out));
        }
    };
    (next, None)
}

/// A software 8N1 receiver fed one line sample per clock (what [`SimBoard`] uses on
/// `uart_tx_o`; public for other bit-level tests).
#[derive(Debug, Clone)]
pub struct UartDecoder {
    cpb: u32,
    state: RxState,
}

impl UartDecoder {
    /// A receiver for `clks_per_bit` clocks per bit; it waits for the line to be high first.
    pub fn new(clks_per_bit: u32) -> UartDecoder {
        UartDecoder {
            cpb: clks_per_bit,
            state: RxState::Idle { armed: false },
        }
    }

    /// One clock's sample: after a stop bit, the byte, or `Err(())` for a bad stop bit.
    pub fn push(&mut self, line: bool) -> Option<Result<u8, ()>> {
        let (st, out) = rx_step(self.state, line, self.cpb);
        self.state = st;
        out
    }
}

/// The board top in Verilator with bit-level UART pins.
pub struct SimBoard {
    m: Clocked,
    link: BoardLink,
    cpb: u32,
    rx_pin: usize,
    tx_pin: usize,
    led: usize,
    decoder: UartDecoder,
    received: VecDeque<u8>,
    framing_errors: u64,
    /// When set, the `uart_tx_o` level of every cycle is appended here.
    capture: Option<Vec<bool>>,
}

impl SimBoard {
    /// Generates the board design for `cfg` and `link`, verilates it (cached) and powers it up.
    pub fn new(cfg: &AccelConfig, link: &BoardLink) -> Result<SimBoard, CosimError> {
        Self::with_cache(cfg, link, &bridge::cache_root())
    }

    pub fn with_cache(
        cfg: &AccelConfig,
        link: &BoardLink,
        cache_root: &Path,
    ) -> Result<SimBoard, CosimError> {
        cfg.validate()
            .map_err(|e| CosimError::Input(e.to_string()))?;
        let board = generate_board(cfg, link, &GenOptions::default())
            .map_err(|e| CosimError::Input(e.to_string()))?;
        let files: Vec<&(String, String)> =
            board.design.files.iter().chain(&board.sim_models).collect();
        let dir =
            harness::write_sources(&format!("board-{}", cfg.name), &files, cache_root, |d| {
                board.write(d).map(drop)
            })?;
        // Simulation models of vendor primitives (the PLL) first, then the design.
        let sources = board
            .sim_models
            .iter()
            .map(|(n, _)| dir.join("sim").join(n))
            .chain(board.design.files.iter().map(|(n, _)| dir.join(n)))
            .collect();
        let sim = harness::load(board.top_module(), sources, cache_root)?;
        let mut b = SimBoard {
            rx_pin: sim.port_index("uart_rx_i")?,
            tx_pin: sim.port_index("uart_tx_o")?,
            led: sim.port_index("led_o")?,
            m: Clocked::new(sim)?,
            link: link.clone(),
            cpb: link.clks_per_bit(),
            decoder: UartDecoder::new(link.clks_per_bit()),
            received: VecDeque::new(),
            framing_errors: 0,
            capture: None,
        };
        // Power-up: line idle, let the power-on reset run out.
        b.m.sim.set_idx(b.rx_pin, 1);
        b.m.sim.set_idx(b.m.sim.port_index("clk_i")?, 0);
        b.m.sim.eval();
        b.idle(32);
        Ok(b)
    }

    pub fn link(&self) -> &BoardLink {
        &self.link
    }
    pub fn clks_per_bit(&self) -> u32 {
        self.cpb
    }
    /// Clock cycles simulated since power-up.
    pub fn cycles(&self) -> u64 {
        self.m.cycles
    }
    /// Bytes from the device that ended with a bad stop bit (should stay 0).
    pub fn framing_errors(&self) -> u64 {
        self.framing_errors
    }
    /// The LEDs: bit 0 busy, 1 done, 2 link error seen, 3 frame in progress.
    pub fn leds(&self) -> u8 {
        self.m.sim.get_idx(self.led) as u8
    }
    /// Bytes decoded from `uart_tx_o` and not yet taken by [`Transport::recv`].
    pub fn pending(&self) -> usize {
        self.received.len()
    }

    /// Starts (or stops, with `false`) recording the `uart_tx_o` level of every cycle.
    pub fn capture_tx(&mut self, on: bool) -> Option<Vec<bool>> {
        std::mem::replace(&mut self.capture, on.then(Vec::new))
    }

    /// Starts writing a VCD of everything that follows.
    pub fn trace_to(&mut self, path: &Path) -> Result<(), CosimError> {
        self.m.trace_to(path)
    }

    pub fn trace_close(&mut self) {
        self.m.trace_close();
    }

    /// One clock cycle, then one sample of `uart_tx_o`.
    fn tick(&mut self) {
        self.m.tick();
        let line = self.m.sim.get_idx(self.tx_pin) != 0;
        if let Some(c) = &mut self.capture {
            c.push(line);
        }
        self.decode(line);
    }

    /// The software UART receiver, one sample per clock.
    fn decode(&mut self, line: bool) {
        match self.decoder.push(line) {
            Some(Ok(b)) => self.received.push_back(b),
            Some(Err(())) => self.framing_errors += 1,
            None => {}
        }
    }

    /// Keeps `uart_rx_i` high for `cycles` clocks.
    pub fn idle(&mut self, cycles: u64) {
        self.m.sim.set_idx(self.rx_pin, 1);
        for _ in 0..cycles {
            self.tick();
        }
    }

    /// Drives one 8N1 character onto `uart_rx_i`; `stop_bit = false` sends a framing error.
    pub fn send_char(&mut self, byte: u8, stop_bit: bool) {
        let bits = std::iter::once(false)
            .chain((0..8).map(|i| byte >> i & 1 == 1))
            .chain(std::iter::once(stop_bit));
        for b in bits {
            self.m.sim.set_idx(self.rx_pin, u64::from(b));
            for _ in 0..self.cpb {
                self.tick();
            }
        }
        self.m.sim.set_idx(self.rx_pin, 1);
    }

    fn clocks(&self, d: Duration) -> u64 {
        (d.as_secs_f64() * f64::from(self.link.clock_hz)).ceil() as u64
    }
}

impl Transport for SimBoard {
    fn send(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        for &b in bytes {
            self.send_char(b, true);
        }
        Ok(())
    }

    /// Simulates until `n` bytes have been decoded or `timeout` of simulated time has passed.
    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u8>, TransportError> {
        let limit = self.m.cycles + self.clocks(timeout);
        while self.received.len() < n && self.m.cycles < limit {
            self.tick();
        }
        if self.received.len() < n {
            return Err(TransportError::Timeout {
                timeout,
                wanted: n,
                got: self.received.drain(..).collect(),
            });
        }
        Ok(self.received.drain(..n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The software decoder against a software 8N1 waveform (no Verilator): every byte, back
    /// to back and with gaps, at several clocks per bit.
    #[test]
    fn software_uart_decoder_loopback() {
        for cpb in [4u32, 5, 8, 16] {
            let mut wave = vec![true; 7];
            let bytes: Vec<u8> = (0..=255).collect();
            for (i, &b) in bytes.iter().enumerate() {
                wave.extend(std::iter::repeat_n(false, cpb as usize));
                for k in 0..8 {
                    wave.extend(std::iter::repeat_n(b >> k & 1 == 1, cpb as usize));
                }
                wave.extend(std::iter::repeat_n(true, cpb as usize + i % 3));
            }
            let mut dec = UartDecoder::new(cpb);
            let mut got = Vec::new();
            for line in wave {
                if let Some(b) = dec.push(line) {
                    got.push(b.expect("no framing error"));
                }
            }
            assert_eq!(got, bytes, "cpb {cpb}");
        }
    }
}
