//! Board top: clock, UART pins and LEDs only. A power-on reset generator (no reset pin), the
//! UART receiver and transmitter, the protocol engine and the accelerator.

use super::{config_line, u};
use crate::board::BoardLink;
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_board_top";

/// Cycles the power-on reset is held (the counter's MSB releases it).
pub const POR_BITS: u32 = 4;

/// The modules the board top instantiates.
pub struct Parts<'a> {
    pub accel: &'a Module,
    pub rx: &'a Module,
    pub tx: &'a Module,
    pub link: &'a Module,
}

pub fn module(cfg: &AccelConfig, link: &BoardLink, p: &Parts) -> Module {
    let oab = cfg.out_addr_bits();
    let mut m = Module::new(
        NAME,
        "SmartDeal accelerator on a board: UART link (docs/protocol.md) to sd_top.\n\
         No reset pin: a power-on counter holds the design in reset for the first cycles after\n\
         configuration (FPGA flip-flops start at 0). LEDs: 0 busy, 1 done, 2 a link error\n\
         happened, 3 a frame is being handled.",
        &format!("{} | {}", link.config_line(), config_line(cfg)),
    );
    let clk = m.input("clk_i", u(1), "board clock");
    let rx_pin = m.input("uart_rx_i", u(1), "UART from the host (idle high)");
    let tx_pin = m.output("uart_tx_o", u(1), "UART to the host (idle high)");
    let led_o = m.output(
        "led_o",
        u(crate::board::LED_COUNT),
        "status LEDs (bits in led_active_low are inverted for active-low LEDs)",
    );

    m.comment("Power-on reset: no reset value on purpose, the bitstream starts it at 0");
    let por = m.reg(
        "por",
        u(POR_BITS),
        Reset::None,
        "counts up once after configuration, then holds",
    );
    let msb = por.bit(POR_BITS - 1);
    m.set_d(
        &por,
        por.clone().add(Expr::lit(1, POR_BITS)),
        Some(msb.clone().not()),
    );
    let rst_n = m.wire("rst_n", msb, "reset released once the counter's MSB is set");

    m.comment("UART");
    let rx_valid = m.out_wire("rx_valid", u(1), "");
    let rx_data = m.out_wire("rx_data", u(8), "");
    let rx_ferr = m.out_wire("rx_ferr", u(1), "");
    m.instance(
        p.rx,
        "u_uart_rx",
        vec![
            ("clk_i", clk.clone()),
            ("rst_ni", rst_n.clone()),
            ("rx_i", rx_pin),
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
            ("clk_i", clk.clone()),
            ("rst_ni", rst_n.clone()),
            ("valid_i", tx_valid.clone()),
            ("data_i", tx_data.clone()),
            ("ready_o", tx_ready.clone()),
            ("tx_o", tx_line.clone()),
        ],
    );

    m.comment("Protocol engine");
    let cmd_valid = m.out_wire("cmd_valid", u(1), "");
    let cmd_op = m.out_wire("cmd_op", u(3), "");
    let cmd_addr = m.out_wire("cmd_addr", u(16), "");
    let cmd_data = m.out_wire("cmd_data", u(32), "");
    let rd_addr = m.out_wire("rd_addr", u(oab), "");
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
            ("rx_valid_i", rx_valid),
            ("rx_data_i", rx_data),
            ("rx_ferr_i", rx_ferr),
            ("tx_ready_i", tx_ready),
            ("busy_i", busy.clone()),
            ("done_i", done.clone()),
            ("err_i", err.clone()),
            ("cycles_i", cycles.clone()),
            ("rd_data_i", rd_data.clone()),
            ("tx_valid_o", tx_valid),
            ("tx_data_o", tx_data),
            ("cmd_valid_o", cmd_valid.clone()),
            ("cmd_op_o", cmd_op.clone()),
            ("cmd_addr_o", cmd_addr.clone()),
            ("cmd_data_o", cmd_data.clone()),
            ("rd_addr_o", rd_addr.clone()),
            ("frame_o", frame.clone()),
            ("err_seen_o", err_seen.clone()),
        ],
    );

    m.comment("Accelerator");
    m.instance(
        p.accel,
        "u_accel",
        vec![
            ("clk_i", clk),
            ("rst_ni", rst_n),
            ("cmd_valid_i", cmd_valid),
            ("cmd_op_i", cmd_op),
            ("cmd_addr_i", cmd_addr),
            ("cmd_data_i", cmd_data),
            ("rd_addr_i", rd_addr),
            ("rd_data_o", rd_data),
            ("busy_o", busy.clone()),
            ("done_o", done.clone()),
            ("err_o", err),
            ("cycles_o", cycles),
        ],
    );
    m.assign(&tx_pin, tx_line);
    let leds = Expr::concat(vec![frame, err_seen, done, busy]);
    let leds = if link.led_active_low == 0 {
        leds
    } else {
        leds.xor(Expr::lit(
            u128::from(link.led_active_low),
            crate::board::LED_COUNT,
        ))
    };
    m.assign(&led_o, leds);
    m
}
