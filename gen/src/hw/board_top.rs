//! Board top: clock, UART pins and LEDs only. A power-on reset generator (no reset pin), the
//! UART receiver and transmitter, the protocol engine and the accelerator.
//!
//! With a PLL ([`BoardLink::pll`]) that logic is [`CORE_NAME`], clocked by the PLL's output, and
//! `sd_board_top` is a thin wrapper holding the PLL primitive and the core, so every register
//! of the core still sits on the module's `clk_i` (the IR clocks every register by `clk_i`).

use super::{config_line, u};
use crate::ir::{Expr, Module, Reset};
use crate::pll::PllFamily;
use smartdeal_core::protocol::{BoardLink, LED_COUNT};
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_board_top";
/// The board logic behind a PLL.
pub const CORE_NAME: &str = "sd_board_core";

/// Cycles the power-on reset is held (the counter's MSB releases it).
pub const POR_BITS: u32 = 4;

/// The modules the board top instantiates.
pub struct Parts<'a> {
    pub accel: &'a Module,
    pub rx: &'a Module,
    pub tx: &'a Module,
    pub link: &'a Module,
}

/// The board logic's pins (and the PLL's lock, behind a PLL).
struct Ports {
    clk: Expr,
    lock: Option<Expr>,
    rx_pin: Expr,
    tx_pin: Expr,
    led_o: Expr,
}

/// The UART receiver's and transmitter's nets.
struct UartNets {
    rx_valid: Expr,
    rx_data: Expr,
    rx_ferr: Expr,
    tx_valid: Expr,
    tx_data: Expr,
    tx_ready: Expr,
    tx_line: Expr,
}

/// The nets between the protocol engine and the accelerator, and the engine's LED flags.
struct EngineNets {
    cmd_valid: Expr,
    cmd_op: Expr,
    cmd_addr: Expr,
    cmd_data: Expr,
    rd_addr: Expr,
    rd_data: Expr,
    busy: Expr,
    done: Expr,
    err: Expr,
    cycles: Expr,
    frame: Expr,
    err_seen: Expr,
}

/// The board logic: `sd_board_top` without a PLL, [`CORE_NAME`] (with a `pll_lock_i` input
/// and `clk_i` the PLL's output) with one.
pub fn module(cfg: &AccelConfig, link: &BoardLink, p: &Parts) -> Module {
    let with_pll = link.pll.is_some();
    let mut m = Module::new(
        if with_pll { CORE_NAME } else { NAME },
        "SmartDeal accelerator on a board: UART link (docs/protocol.md) to sd_top.\n\
         No reset pin: a power-on counter holds the design in reset for the first cycles after\n\
         configuration (FPGA flip-flops start at 0), and behind a PLL until it has locked.\n\
         LEDs: 0 busy, 1 done, 2 a link error happened, 3 a frame is being handled.",
        &format!("{} | {}", link.config_line(), config_line(cfg)),
    );
    let io = ports(&mut m, with_pll);
    let rst_n = power_on_reset(&mut m, io.lock.clone());
    let rx_rst_n = part_reset(&mut m, cfg, "uart_rx", &rst_n);
    let tx_rst_n = part_reset(&mut m, cfg, "uart_tx", &rst_n);
    let link_rst_n = part_reset(&mut m, cfg, "link", &rst_n);
    let accel_rst_n = part_reset(&mut m, cfg, "accel", &rst_n);
    let uart = uart(&mut m, p, &io, [rx_rst_n, tx_rst_n]);
    let eng = protocol_engine(&mut m, cfg, p, &io.clk, &link_rst_n, &uart);
    accelerator(&mut m, p, io.clk, accel_rst_n, &eng);
    m.assign(&io.tx_pin, uart.tx_line);
    let leds = Expr::concat(vec![eng.frame, eng.err_seen, eng.done, eng.busy]);
    let leds = if link.led_active_low == 0 {
        leds
    } else {
        leds.xor(Expr::lit(u128::from(link.led_active_low), LED_COUNT))
    };
    m.assign(&io.led_o, leds);
    m
}

fn ports(m: &mut Module, with_pll: bool) -> Ports {
    let clk = m.input(
        "clk_i",
        u(1),
        if with_pll {
            "core clock (the PLL's output)"
        } else {
            "board clock"
        },
    );
    let lock = with_pll.then(|| {
        m.input(
            "pll_lock_i",
            u(1),
            "the PLL has locked (asynchronous; only ever enables the reset counter)",
        )
    });
    let rx_pin = m.input("uart_rx_i", u(1), "UART from the host (idle high)");
    let tx_pin = m.output("uart_tx_o", u(1), "UART to the host (idle high)");
    let led_o = m.output(
        "led_o",
        u(LED_COUNT),
        "status LEDs (bits in led_active_low are inverted for active-low LEDs)",
    );
    Ports {
        clk,
        lock,
        rx_pin,
        tx_pin,
        led_o,
    }
}

/// The power-on reset counter (behind a PLL, gated by its lock); returns the active-low
/// reset of everything else.
fn power_on_reset(m: &mut Module, lock: Option<Expr>) -> Expr {
    m.comment("Power-on reset: no reset value on purpose, the bitstream starts it at 0");
    let por = m.reg(
        "por",
        u(POR_BITS),
        Reset::None,
        "counts up once after configuration, then holds",
    );
    let msb = por.bit(POR_BITS - 1);
    match lock {
        None => m.set_d(
            &por,
            por.clone().add(Expr::lit(1, POR_BITS)),
            Some(msb.clone().not()),
        ),
        // LOCK is not synchronised on purpose: if a flop goes metastable on its edge, each
        // counter bit settles to its bit of `por + 1` or of 0, i.e. to (por + 1) & mask, a count
        // no larger than the legitimate next one, whose MSB is set only when por + 1's is.
        // Behind a PLL: count only once locked; a lost lock clears the counter, which puts the
        // design back into reset (one core clock later) until the PLL locks again.
        Some(lock) => m.set_d(
            &por,
            Expr::mux(
                lock.clone(),
                por.clone().add(Expr::lit(1, POR_BITS)),
                Expr::lit(0, POR_BITS),
            ),
            Some(msb.clone().and(lock).not()),
        ),
    }
    m.wire("rst_n", msb, "reset released once the counter's MSB is set")
}

/// The reset of one part of the board logic (the UART receiver or transmitter, the protocol
/// engine, the accelerator). With the accelerator's extra stages each part takes it from a copy
/// of its own (a register, kept apart; the counter's MSB a cycle later), so no single net
/// carries the reset across the chip (on the ECP5 at 100 MHz that net and the inverter the
/// active-low reset needs in front of the flip-flops took 11.0 ns of routing). Nothing reaches
/// any part within cycles of the release: the first UART byte takes a bit time to arrive.
fn part_reset(m: &mut Module, cfg: &AccelConfig, part: &str, rst_n: &Expr) -> Expr {
    if !cfg.extra_stages {
        return rst_n.clone();
    }
    let r = m.reg_next(
        &format!("{part}_rst_n"),
        rst_n.clone(),
        None,
        Reset::None,
        "the part's copy of rst_n, a cycle later",
    );
    m.keep_apart(&r);
    r
}

/// The UART receiver on the RX pin and the transmitter driving the TX pin, with their resets.
fn uart(m: &mut Module, p: &Parts, io: &Ports, [rx_rst_n, tx_rst_n]: [Expr; 2]) -> UartNets {
    m.comment("UART");
    let rx_valid = m.out_wire("rx_valid", u(1), "");
    let rx_data = m.out_wire("rx_data", u(8), "");
    let rx_ferr = m.out_wire("rx_ferr", u(1), "");
    m.instance(
        p.rx,
        "u_uart_rx",
        vec![
            ("clk_i", io.clk.clone()),
            ("rst_ni", rx_rst_n),
            ("rx_i", io.rx_pin.clone()),
            ("valid_o", rx_valid.clone()),
            ("data_o", rx_data.clone()),
            ("ferr_o", rx_ferr.clone()),
        ],
    );
    let tx_valid = m.out_wire("tx_valid", u(1), "");
    let tx_data = m.out_wire("tx_data", u(8), "");
    let tx_ready = m.out_wire("tx_ready", u(1), "");
    let tx_line = m.out_wire("tx_line", u(1), "");
    m.instance(
        p.tx,
        "u_uart_tx",
        vec![
            ("clk_i", io.clk.clone()),
            ("rst_ni", tx_rst_n),
            ("valid_i", tx_valid.clone()),
            ("data_i", tx_data.clone()),
            ("ready_o", tx_ready.clone()),
            ("tx_o", tx_line.clone()),
        ],
    );
    UartNets {
        rx_valid,
        rx_data,
        rx_ferr,
        tx_valid,
        tx_data,
        tx_ready,
        tx_line,
    }
}

/// The protocol engine between the UART and the accelerator's command and read ports.
fn protocol_engine(
    m: &mut Module,
    cfg: &AccelConfig,
    p: &Parts,
    clk: &Expr,
    rst_n: &Expr,
    uart: &UartNets,
) -> EngineNets {
    m.comment("Protocol engine");
    let cmd_valid = m.out_wire("cmd_valid", u(1), "");
    let cmd_op = m.out_wire("cmd_op", u(3), "");
    let cmd_addr = m.out_wire("cmd_addr", u(16), "");
    let cmd_data = m.out_wire("cmd_data", u(32), "");
    let rd_addr = m.out_wire("rd_addr", u(cfg.out_addr_bits()), "");
    let rd_data = m.out_wire("rd_data", u(8), "");
    let busy = m.out_wire("busy", u(1), "");
    let done = m.out_wire("done", u(1), "");
    let err = m.out_wire("err", u(1), "");
    let cycles = m.out_wire("cycles", u(32), "");
    let frame = m.out_wire("frame", u(1), "");
    let err_seen = m.out_wire("err_seen", u(1), "");
    m.instance(
        p.link,
        "u_link",
        vec![
            ("clk_i", clk.clone()),
            ("rst_ni", rst_n.clone()),
            ("rx_valid_i", uart.rx_valid.clone()),
            ("rx_data_i", uart.rx_data.clone()),
            ("rx_ferr_i", uart.rx_ferr.clone()),
            ("tx_ready_i", uart.tx_ready.clone()),
            ("busy_i", busy.clone()),
            ("done_i", done.clone()),
            ("err_i", err.clone()),
            ("cycles_i", cycles.clone()),
            ("rd_data_i", rd_data.clone()),
            ("tx_valid_o", uart.tx_valid.clone()),
            ("tx_data_o", uart.tx_data.clone()),
            ("cmd_valid_o", cmd_valid.clone()),
            ("cmd_op_o", cmd_op.clone()),
            ("cmd_addr_o", cmd_addr.clone()),
            ("cmd_data_o", cmd_data.clone()),
            ("rd_addr_o", rd_addr.clone()),
            ("frame_o", frame.clone()),
            ("err_seen_o", err_seen.clone()),
        ],
    );
    EngineNets {
        cmd_valid,
        cmd_op,
        cmd_addr,
        cmd_data,
        rd_addr,
        rd_data,
        busy,
        done,
        err,
        cycles,
        frame,
        err_seen,
    }
}

/// The accelerator, driven by the protocol engine.
fn accelerator(m: &mut Module, p: &Parts, clk: Expr, rst_n: Expr, eng: &EngineNets) {
    m.comment("Accelerator");
    m.instance(
        p.accel,
        "u_accel",
        vec![
            ("clk_i", clk),
            ("rst_ni", rst_n),
            ("cmd_valid_i", eng.cmd_valid.clone()),
            ("cmd_op_i", eng.cmd_op.clone()),
            ("cmd_addr_i", eng.cmd_addr.clone()),
            ("cmd_data_i", eng.cmd_data.clone()),
            ("rd_addr_i", eng.rd_addr.clone()),
            ("rd_data_o", eng.rd_data.clone()),
            ("busy_o", eng.busy.clone()),
            ("done_o", eng.done.clone()),
            ("err_o", eng.err.clone()),
            ("cycles_o", eng.cycles.clone()),
        ],
    );
}

/// `sd_board_top` with a PLL: the board clock into the PLL primitive, its output clocks `core`
/// (from [`module`]), its lock releases the core's reset counter. Same ports as without a PLL,
/// so the pin files and the simulated board do not change.
pub fn pll_wrapper(cfg: &AccelConfig, link: &BoardLink, core: &Module) -> Module {
    let pll = link
        .pll
        .as_ref()
        .expect("pll_wrapper() is for a link with a PLL");
    let mut m = Module::new(
        NAME,
        "SmartDeal accelerator on a board behind a PLL: board clock -> PLL -> sd_board_core.",
        &format!("{} | {}", link.config_line(), config_line(cfg)),
    );
    let clk = m.input("clk_i", u(1), "board clock (the PLL's input)");
    let rx_pin = m.input("uart_rx_i", u(1), "UART from the host (idle high)");
    let tx_pin = m.output("uart_tx_o", u(1), "UART to the host (idle high)");
    let led_w = LED_COUNT;
    let led_o = m.output("led_o", u(led_w), "status LEDs (see sd_board_core)");
    m.comment(&format!("PLL: {}", pll.config_line()));
    let clk_core = m.out_wire("clk_core", u(1), "core clock (the PLL's output)");
    let lock = m.out_wire("pll_lock", u(1), "the PLL has locked");
    let prim = crate::pll::primitive_ports(pll);
    let one = Expr::lit(1, 1);
    let zero = Expr::lit(0, 1);
    let conns = match pll.family() {
        PllFamily::Ice40 => vec![
            ("PACKAGEPIN", clk),
            ("PLLOUTGLOBAL", clk_core.clone()),
            ("RESETB", one),
            ("BYPASS", zero),
            ("LOCK", lock.clone()),
        ],
        // ecppll's connection: feedback from CLKOP, the dynamic phase inputs at their
        // inactive levels.
        PllFamily::Ecp5 => vec![
            ("CLKI", clk),
            ("CLKFB", clk_core.clone()),
            ("CLKOP", clk_core.clone()),
            ("RST", zero.clone()),
            ("STDBY", zero.clone()),
            ("PHASESEL0", zero.clone()),
            ("PHASESEL1", zero.clone()),
            ("PHASEDIR", one.clone()),
            ("PHASESTEP", one.clone()),
            ("PHASELOADREG", one),
            ("PLLWAKESYNC", zero.clone()),
            ("ENCLKOP", zero),
            ("LOCK", lock.clone()),
        ],
    };
    m.instance_with_params(&prim, "u_pll", pll.parameters(), conns);
    let tx = m.out_wire("tx_line", u(1), "");
    let leds = m.out_wire("leds", u(led_w), "");
    m.instance(
        core,
        "u_core",
        vec![
            ("clk_i", clk_core),
            ("pll_lock_i", lock),
            ("uart_rx_i", rx_pin),
            ("uart_tx_o", tx.clone()),
            ("led_o", leds.clone()),
        ],
    );
    m.assign(&tx_pin, tx);
    m.assign(&led_o, leds);
    m
}
