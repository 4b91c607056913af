//! The board's PLL: which divider settings give the core clock (iCE40 `SB_PLL40_PAD`, ECP5
//! `EHXPLLL`). Here, not in the generator, because the board link's parameters (and so the
//! host) depend on the clock it makes; the primitive's Verilog is `smartdeal_gen::pll`.
//!
//! [`Pll::plan`] searches the dividers the way the vendor-neutral calculators do (`icepll` from
//! IceStorm, `ecppll` from Project Trellis) and picks the fastest output clock **at or below**
//! the request, because the request is a timing limit: a clock above it would fail place and
//! route. Frequencies are exact rationals in Hz here (the calculators use floats), so the
//! comparison never depends on rounding. The tests check every plan against the two tools.

use serde::Serialize;

/// The two PLL families the boards have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PllFamily {
    /// iCE40 `SB_PLL40_PAD` (input from the dedicated clock pin), simple feedback.
    Ice40,
    /// ECP5 `EHXPLLL`, feedback from CLKOP.
    Ecp5,
}

/// Divider settings of one PLL, as the primitive's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "primitive")]
pub enum PllSettings {
    /// f_out = f_in · (DIVF+1) / ((DIVR+1) · 2^DIVQ).
    #[serde(rename = "SB_PLL40_PAD")]
    Ice40 {
        divr: u8,
        divf: u8,
        divq: u8,
        filter_range: u8,
    },
    /// f_out = f_in · CLKFB_DIV / CLKI_DIV; VCO = f_out · CLKOP_DIV.
    #[serde(rename = "EHXPLLL")]
    Ecp5 {
        clki_div: u8,
        clkfb_div: u8,
        clkop_div: u8,
        clkop_cphase: u8,
    },
}

/// A planned PLL: the board clock it takes and the dividers that make the core clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pll {
    /// Board oscillator frequency (the PLL input), in Hz.
    pub in_hz: u32,
    pub settings: PllSettings,
}

/// Why no PLL setting exists.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PllError {
    #[error(
        "no {primitive} setting gives a clock between {min_mhz} MHz and the requested {want_mhz} \
         MHz from the {in_mhz} MHz board clock (the PLL's output range is {min_mhz}-{max_mhz} MHz)"
    )]
    OutOfRange {
        primitive: &'static str,
        in_mhz: f64,
        want_mhz: f64,
        min_mhz: f64,
        max_mhz: f64,
    },
}

/// Device limits, in Hz (iCE40 LP/HX/UP sysCLOCK PLL; ECP5 sysCLOCK PLL), as `icepll` and
/// `ecppll` use them.
mod limits {
    pub const ICE40_PFD: (u64, u64) = (10_000_000, 133_000_000);
    pub const ICE40_VCO: (u64, u64) = (533_000_000, 1_066_000_000);
    pub const ICE40_OUT: (u64, u64) = (16_000_000, 275_000_000);
    /// ECP5 PFD minimum is 3.125 MHz.
    pub const ECP5_PFD_MIN_X8: u64 = 25_000_000;
    pub const ECP5_PFD_MAX: u64 = 400_000_000;
    pub const ECP5_VCO: (u64, u64) = (400_000_000, 800_000_000);
    pub const ECP5_OUT: (u64, u64) = (10_000_000, 400_000_000);
}

/// `num / den` in Hz, compared by cross-multiplication.
#[derive(Debug, Clone, Copy)]
struct Freq {
    num: u64,
    den: u64,
}

impl Freq {
    fn le_hz(self, hz: u64) -> bool {
        u128::from(self.num) <= u128::from(hz) * u128::from(self.den)
    }
    fn ge_hz(self, hz: u64) -> bool {
        u128::from(self.num) >= u128::from(hz) * u128::from(self.den)
    }
    fn gt(self, o: Freq) -> bool {
        u128::from(self.num) * u128::from(o.den) > u128::from(o.num) * u128::from(self.den)
    }
    fn eq(self, o: Freq) -> bool {
        u128::from(self.num) * u128::from(o.den) == u128::from(o.num) * u128::from(self.den)
    }
    fn hz(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl Pll {
    /// The fastest output clock of `family` at or below `want_hz` from an `in_hz` board clock.
    /// Ties (the same output from other dividers) go as in the calculators: iCE40 the first
    /// found (DIVR, DIVF, DIVQ ascending), ECP5 the VCO closest to 600 MHz, then the first found.
    pub fn plan(family: PllFamily, in_hz: u32, want_hz: u32) -> Result<Pll, PllError> {
        let (lo, hi) = match family {
            PllFamily::Ice40 => limits::ICE40_OUT,
            PllFamily::Ecp5 => limits::ECP5_OUT,
        };
        let mut best: Option<(Freq, Pll)> = None;
        let mut consider = |f: Freq, pll: Pll, vco: Freq| {
            if !f.le_hz(u64::from(want_hz)) || !f.ge_hz(lo) || !f.le_hz(hi) {
                return;
            }
            let better = match &best {
                None => true,
                Some((b, bp)) => {
                    f.gt(*b)
                        || (f.eq(*b)
                            && family == PllFamily::Ecp5
                            && (vco.hz() - 600e6).abs() < (bp.vco().hz() - 600e6).abs())
                }
            };
            if better {
                best = Some((f, pll));
            }
        };
        let fin = u64::from(in_hz);
        match family {
            PllFamily::Ice40 => {
                for divr in 0..=15u8 {
                    let pfd = Freq {
                        num: fin,
                        den: u64::from(divr) + 1,
                    };
                    if !pfd.ge_hz(limits::ICE40_PFD.0) || !pfd.le_hz(limits::ICE40_PFD.1) {
                        continue;
                    }
                    for divf in 0..=127u8 {
                        let vco = Freq {
                            num: fin * (u64::from(divf) + 1),
                            den: pfd.den,
                        };
                        if !vco.ge_hz(limits::ICE40_VCO.0) || !vco.le_hz(limits::ICE40_VCO.1) {
                            continue;
                        }
                        for divq in 1..=6u8 {
                            let f = Freq {
                                num: vco.num,
                                den: vco.den << divq,
                            };
                            let pll = Pll {
                                in_hz,
                                settings: PllSettings::Ice40 {
                                    divr,
                                    divf,
                                    divq,
                                    filter_range: ice40_filter_range(pfd.hz()),
                                },
                            };
                            consider(f, pll, vco);
                        }
                    }
                }
            }
            PllFamily::Ecp5 => {
                for clki_div in 1..=128u8 {
                    let pfd = Freq {
                        num: fin,
                        den: u64::from(clki_div),
                    };
                    // 8 · f_pfd ≥ 25 MHz, i.e. f_pfd ≥ 3.125 MHz, without fractions.
                    let pfd_x8 = Freq {
                        num: fin * 8,
                        den: pfd.den,
                    };
                    if !pfd_x8.ge_hz(limits::ECP5_PFD_MIN_X8) || !pfd.le_hz(limits::ECP5_PFD_MAX) {
                        continue;
                    }
                    for clkfb_div in 1..=80u8 {
                        let f = Freq {
                            num: fin * u64::from(clkfb_div),
                            den: pfd.den,
                        };
                        for clkop_div in 1..=128u8 {
                            let vco = Freq {
                                num: f.num * u64::from(clkop_div),
                                den: f.den,
                            };
                            if !vco.ge_hz(limits::ECP5_VCO.0) || !vco.le_hz(limits::ECP5_VCO.1) {
                                continue;
                            }
                            let pll = Pll {
                                in_hz,
                                settings: PllSettings::Ecp5 {
                                    clki_div,
                                    clkfb_div,
                                    clkop_div,
                                    clkop_cphase: ecppll_cphase(
                                        in_hz, clki_div, clkfb_div, clkop_div,
                                    ),
                                },
                            };
                            consider(f, pll, vco);
                        }
                    }
                }
            }
        }
        best.map(|(_, p)| p).ok_or(PllError::OutOfRange {
            primitive: family.primitive(),
            in_mhz: f64::from(in_hz) / 1e6,
            want_mhz: f64::from(want_hz) / 1e6,
            min_mhz: lo as f64 / 1e6,
            max_mhz: hi as f64 / 1e6,
        })
    }

    fn out(&self) -> Freq {
        let fin = u64::from(self.in_hz);
        match self.settings {
            PllSettings::Ice40 {
                divr, divf, divq, ..
            } => Freq {
                num: fin * (u64::from(divf) + 1),
                den: (u64::from(divr) + 1) << divq,
            },
            PllSettings::Ecp5 {
                clki_div,
                clkfb_div,
                ..
            } => Freq {
                num: fin * u64::from(clkfb_div),
                den: u64::from(clki_div),
            },
        }
    }

    fn vco(&self) -> Freq {
        let o = self.out();
        match self.settings {
            PllSettings::Ice40 { divq, .. } => Freq {
                num: o.num << divq,
                den: o.den,
            },
            PllSettings::Ecp5 { clkop_div, .. } => Freq {
                num: o.num * u64::from(clkop_div),
                den: o.den,
            },
        }
    }

    /// The core clock, exactly, in Hz.
    pub fn out_hz_exact(&self) -> f64 {
        self.out().hz()
    }

    /// The core clock rounded to whole Hz (what [`crate::protocol::BoardLink::clock_hz`] holds; the UART
    /// divisor error from the rounding is below 1 ppm).
    pub fn out_hz(&self) -> u32 {
        let o = self.out();
        ((o.num + o.den / 2) / o.den) as u32
    }

    /// The VCO frequency in Hz.
    pub fn vco_hz(&self) -> f64 {
        self.vco().hz()
    }

    pub fn family(&self) -> PllFamily {
        match self.settings {
            PllSettings::Ice40 { .. } => PllFamily::Ice40,
            PllSettings::Ecp5 { .. } => PllFamily::Ecp5,
        }
    }

    /// One line for file headers.
    pub fn config_line(&self) -> String {
        let s = match self.settings {
            PllSettings::Ice40 {
                divr,
                divf,
                divq,
                filter_range,
            } => format!("DIVR={divr} DIVF={divf} DIVQ={divq} FILTER_RANGE={filter_range}"),
            PllSettings::Ecp5 {
                clki_div,
                clkfb_div,
                clkop_div,
                clkop_cphase,
            } => format!(
                "CLKI_DIV={clki_div} CLKFB_DIV={clkfb_div} CLKOP_DIV={clkop_div} \
                 CLKOP_CPHASE={clkop_cphase}"
            ),
        };
        format!(
            "{} {} Hz -> {:.4} MHz (VCO {:.1} MHz, {s})",
            self.family().primitive(),
            self.in_hz,
            self.out_hz_exact() / 1e6,
            self.vco_hz() / 1e6
        )
    }

    /// The primitive's parameters, rendered as Verilog constants, in the order the board top
    /// writes them.
    pub fn parameters(&self) -> Vec<(&'static str, String)> {
        let s = |v: &str| format!("\"{v}\"");
        match self.settings {
            PllSettings::Ice40 {
                divr,
                divf,
                divq,
                filter_range,
            } => vec![
                ("FEEDBACK_PATH", s("SIMPLE")),
                ("DIVR", format!("4'd{divr}")),
                ("DIVF", format!("7'd{divf}")),
                ("DIVQ", format!("3'd{divq}")),
                ("FILTER_RANGE", format!("3'd{filter_range}")),
            ],
            PllSettings::Ecp5 {
                clki_div,
                clkfb_div,
                clkop_div,
                clkop_cphase,
            } => vec![
                ("PLLRST_ENA", s("DISABLED")),
                ("INTFB_WAKE", s("DISABLED")),
                ("STDBY_ENABLE", s("DISABLED")),
                ("DPHASE_SOURCE", s("DISABLED")),
                ("OUTDIVIDER_MUXA", s("DIVA")),
                ("OUTDIVIDER_MUXB", s("DIVB")),
                ("OUTDIVIDER_MUXC", s("DIVC")),
                ("OUTDIVIDER_MUXD", s("DIVD")),
                ("CLKI_DIV", clki_div.to_string()),
                ("CLKOP_ENABLE", s("ENABLED")),
                ("CLKOP_DIV", clkop_div.to_string()),
                ("CLKOP_CPHASE", clkop_cphase.to_string()),
                ("CLKOP_FPHASE", "0".into()),
                ("FEEDBK_PATH", s("CLKOP")),
                ("CLKFB_DIV", clkfb_div.to_string()),
            ],
        }
    }
}

/// Input clocks the simulation model of a PLL takes to lock.
pub const LOCK_CYCLES: u32 = 16;

impl PllFamily {
    pub fn primitive(self) -> &'static str {
        match self {
            PllFamily::Ice40 => "SB_PLL40_PAD",
            PllFamily::Ecp5 => "EHXPLLL",
        }
    }
}

/// CLKOP_CPHASE as ecppll computes it: the primary output shifted by half its period, in VCO
/// cycles ("Lattice seems to do this"), with ecppll's float arithmetic and truncation, so the
/// setting is the one that tool (and the boards using its output) has. The phase of CLKOP does
/// not change its frequency; it is only kept identical to the reference.
fn ecppll_cphase(in_hz: u32, clki_div: u8, clkfb_div: u8, clkop_div: u8) -> u8 {
    let input = (f64::from(in_hz) / 1e6) as f32;
    let fpfd = input / f32::from(clki_div);
    let fvco = fpfd * f32::from(clkfb_div) * f32::from(clkop_div);
    let fout = fvco / f32::from(clkop_div);
    let ns_phase = (1.0 / (f64::from(fout) * 1e6) * 0.5) as f32;
    (f64::from(ns_phase) * (f64::from(fvco) * 1e6)) as u8
}

/// The loop-filter setting for a phase-detector frequency (icepll's table).
fn ice40_filter_range(pfd_hz: f64) -> u8 {
    let mhz = pfd_hz / 1e6;
    match mhz {
        m if m < 17.0 => 1,
        m if m < 26.0 => 2,
        m if m < 44.0 => 3,
        m if m < 66.0 => 4,
        m if m < 101.0 => 5,
        _ => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_stay_inside_the_device_limits_and_below_the_request() {
        for (fam, fin) in [
            (PllFamily::Ice40, 12_000_000),
            (PllFamily::Ecp5, 25_000_000),
        ] {
            for want in (17..=120).step_by(7).map(|m| m * 1_000_000) {
                let p = Pll::plan(fam, fin, want).unwrap();
                let f = p.out_hz_exact();
                assert!(f <= f64::from(want), "{fam:?} {want}: {f}");
                // Within 10 % of the request: the dividers are fine enough here (the coarsest
                // case is ECP5 at 24 MHz: 25 · 7/8 = 21.875 MHz, as the PFD must stay ≥ 3.125 MHz).
                assert!(f >= 0.9 * f64::from(want), "{fam:?} {want}: {f}");
                let vco = p.vco_hz();
                match fam {
                    PllFamily::Ice40 => assert!((533e6..=1066e6).contains(&vco), "{vco}"),
                    PllFamily::Ecp5 => assert!((400e6..=800e6).contains(&vco), "{vco}"),
                }
            }
        }
    }

    #[test]
    fn requests_outside_the_output_range_are_refused() {
        // 12 MHz in: the slowest output of 16 MHz or more is 16.125 MHz (icepll would offer
        // 15.94 MHz for 16, below the datasheet's minimum).
        let e = Pll::plan(PllFamily::Ice40, 12_000_000, 16_000_000).unwrap_err();
        assert!(e.to_string().contains("SB_PLL40_PAD"), "{e}");
        assert!(e.to_string().contains("16-275 MHz"), "{e}");
        assert!(Pll::plan(PllFamily::Ecp5, 25_000_000, 9_000_000).is_err());
        let p = Pll::plan(PllFamily::Ice40, 12_000_000, 16_125_000).unwrap();
        assert_eq!(p.out_hz(), 16_125_000);
    }
}
