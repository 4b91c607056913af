//! The supported boards: device, package, clock, LEDs, DSP budget, pin file and tool set.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tools::Tool;

/// The FPGA family of a board (selects the tool set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Ice40,
    Ecp5,
}

/// A supported board. Its pin file (`fpga/boards/`) constrains the board-top ports `clk_i`,
/// `uart_rx_i`, `uart_tx_o` and `led_o[0..led_count)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Board {
    /// 1BitSquared iCEBreaker: iCE40UP5K-SG48, 12 MHz, FTDI UART; LEDs: red and green on the
    /// main board (active low) plus five on the snap-off PMOD2 board (active high).
    Icebreaker,
    /// Radiona ULX3S with the LFE5U-85F: CABGA381, speed grade 6, 25 MHz, FTDI UART, 8 LEDs.
    // Explicit, so report.json spells the board as Board::name() does.
    #[serde(rename = "ulx3s_85f")]
    Ulx3s85f,
}

impl Board {
    /// Every supported board.
    pub const ALL: [Board; 2] = [Board::Icebreaker, Board::Ulx3s85f];

    /// Short name (`icebreaker`, `ulx3s_85f`), as in `report.json`.
    pub fn name(self) -> &'static str {
        match self {
            Board::Icebreaker => "icebreaker",
            Board::Ulx3s85f => "ulx3s_85f",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Board::Icebreaker => Family::Ice40,
            Board::Ulx3s85f => Family::Ecp5,
        }
    }

    /// Device name as the vendor writes it.
    pub fn device(self) -> &'static str {
        match self {
            Board::Icebreaker => "iCE40UP5K",
            Board::Ulx3s85f => "LFE5U-85F",
        }
    }

    pub fn package(self) -> &'static str {
        match self {
            Board::Icebreaker => "SG48",
            Board::Ulx3s85f => "CABGA381",
        }
    }

    /// The board oscillator on `clk_i`, the default timing target.
    pub fn clock_mhz(self) -> f64 {
        match self {
            Board::Icebreaker => 12.0,
            Board::Ulx3s85f => 25.0,
        }
    }

    /// How many `led_o` bits the pin file constrains (a wider `led_o` fails place and route).
    pub fn led_count(self) -> u32 {
        match self {
            Board::Icebreaker => 7,
            Board::Ulx3s85f => 8,
        }
    }

    /// The board top's `led_o` bits (0..4) whose LEDs are lit by a low pin: the iCEBreaker's red
    /// (`led_o[0]`) and green (`led_o[1]`) main-board LEDs; the ULX3S LEDs are all active high.
    pub fn led_active_low(self) -> u8 {
        match self {
            Board::Icebreaker => 0b0011,
            Board::Ulx3s85f => 0,
        }
    }

    /// DSP multiplier blocks on the device (UP5K: 8 SB_MAC16; LFE5U-85F: 156 MULT18X18D).
    pub fn dsp_blocks(self) -> u32 {
        match self {
            Board::Icebreaker => 8,
            Board::Ulx3s85f => 156,
        }
    }

    /// DSP blocks Yosys uses for a `a × b` multiplier: operands up to the block width (16 on
    /// iCE40, 18 on ECP5) take one block; wider ones are split into block-sized pieces.
    pub fn dsp_blocks_for(self, a_bits: u32, b_bits: u32) -> u32 {
        let w = match self.family() {
            Family::Ice40 => 16,
            Family::Ecp5 => 18,
        };
        a_bits.div_ceil(w) * b_bits.div_ceil(w)
    }

    /// Whether multipliers of these widths fit the device's DSP blocks. Yosys maps *every*
    /// multiplier to DSPs once asked, so this decides `BuildOptions::dsp` for `--dsp auto`.
    pub fn dsps_fit(self, multipliers: &[(u32, u32)]) -> bool {
        let need: u32 = multipliers
            .iter()
            .map(|&(a, b)| self.dsp_blocks_for(a, b))
            .sum();
        need <= self.dsp_blocks()
    }

    /// The board's pin file in this crate (`fpga/boards/icebreaker.pcf`, `fpga/boards/ulx3s.lpf`).
    pub fn constraints_file(self) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("boards");
        match self {
            Board::Icebreaker => dir.join("icebreaker.pcf"),
            Board::Ulx3s85f => dir.join("ulx3s.lpf"),
        }
    }

    /// The three tools of the flow: synthesis, place and route, bitstream packer.
    pub fn tools(self) -> [Tool; 3] {
        match self.family() {
            Family::Ice40 => [Tool::Yosys, Tool::NextpnrIce40, Tool::Icepack],
            Family::Ecp5 => [Tool::YowaspYosys, Tool::NextpnrEcp5, Tool::Ecppack],
        }
    }

    pub(super) fn nextpnr_device_args(self) -> &'static [&'static str] {
        match self {
            Board::Icebreaker => &["--up5k", "--package", "sg48"],
            Board::Ulx3s85f => &["--85k", "--package", "CABGA381", "--speed", "6"],
        }
    }
}

impl std::fmt::Display for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsp_budget_matches_the_measured_mapping() {
        // Measured with Yosys: an 8×8 lane multiplier takes one block on both families; the
        // output requantizer's 33×16 takes 3 SB_MAC16 (iCE40) and 2 MULT18X18D (ECP5).
        assert_eq!(Board::Icebreaker.dsp_blocks_for(8, 8), 1);
        assert_eq!(Board::Icebreaker.dsp_blocks_for(33, 16), 3);
        assert_eq!(Board::Ulx3s85f.dsp_blocks_for(33, 16), 2);
        let lanes = |n: usize| {
            let mut v = vec![(8, 8); 3 * n];
            v.push((33, 16));
            v
        };
        // One lane: 6 of the UP5K's 8; two lanes would need 9.
        assert!(Board::Icebreaker.dsps_fit(&lanes(1)));
        assert!(!Board::Icebreaker.dsps_fit(&lanes(2)));
        // 16 lanes: 50 of the 85F's 156; 52 lanes: 158.
        assert!(Board::Ulx3s85f.dsps_fit(&lanes(16)));
        assert!(Board::Ulx3s85f.dsps_fit(&lanes(51)));
        assert!(!Board::Ulx3s85f.dsps_fit(&lanes(52)));
    }

    #[test]
    fn board_pin_files_exist_and_name_the_ports() {
        for board in Board::ALL {
            let text = std::fs::read_to_string(board.constraints_file()).unwrap();
            for port in ["clk_i", "uart_rx_i", "uart_tx_o"] {
                assert!(text.contains(port), "{board}: {port}");
            }
            for i in 0..board.led_count() {
                assert!(text.contains(&format!("led_o[{i}]")), "{board}: led_o[{i}]");
            }
            assert_eq!(
                serde_json::to_string(&board).unwrap(),
                format!("\"{}\"", board.name())
            );
        }
    }
}
