//! UART transmitter, 8N1: a 10-bit shift register (start, 8 data bits LSB first, stop) clocked
//! out every `clks_per_bit` cycles. The line is driven from a register, so it never glitches.

use super::{config_line, u};
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::params::clog2;
use smartdeal_core::protocol::BoardLink;
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_uart_tx";

pub fn module(cfg: &AccelConfig, link: &BoardLink) -> Module {
    let cpb = link.clks_per_bit();
    // The counter holds -1..=cpb-2: its bits for 0..=cpb-2 and a sign bit, the bit's end.
    let cw = clog2(u64::from(cpb - 1)).max(1) + 1;
    let mut m = Module::new(
        NAME,
        &format!(
            "UART transmitter, 8N1, {cpb} clocks per bit. A byte is taken when valid_i and\n\
             ready_o are both high; ready_o goes low on the next cycle and returns once the stop\n\
             bit has been sent (10 bit times later)."
        ),
        &format!("{} | {}", link.config_line(), config_line(cfg)),
    );
    m.clock_reset();
    let valid = m.input("valid_i", u(1), "send data_i");
    let data = m.input("data_i", u(8), "byte to send");
    let ready_o = m.output("ready_o", u(1), "idle: a byte can be taken");
    let tx_o = m.output("tx_o", u(1), "serial output (idle high)");

    let busy = m.reg("busy", u(1), Reset::To(0), "sending a byte");
    let cnt = m.reg(
        "cnt",
        u(cw),
        Reset::To(0),
        "clocks left in the current bit, minus one; negative (the sign bit) at its end",
    );
    let bitn = m.reg(
        "bitn",
        u(4),
        Reset::To(0),
        "bit being sent: 0 start .. 9 stop",
    );
    // Reset to all ones: bit 0 is the line, which must idle high.
    let shift = m.reg(
        "shift",
        u(10),
        Reset::To(0x3ff),
        "{stop, data, start}; bit 0 drives the line",
    );
    let take = m.wire("take", valid.and(busy.clone().not()), "a byte is taken");
    let bit_end = m.wire(
        "bit_end",
        busy.clone().and(cnt.bit(cw - 1)),
        "the current bit has lasted cpb clocks",
    );
    let last = m.wire(
        "last",
        bit_end.clone().and(bitn.clone().eq(Expr::lit(9, 4))),
        "the stop bit has been sent",
    );
    // Loaded with cpb - 2, the counter is negative cpb cycles later.
    let full = Expr::lit(u128::from(cpb - 2), cw);
    m.set_d(
        &busy,
        Expr::mux(
            take.clone(),
            Expr::lit(1, 1),
            Expr::mux(last, Expr::lit(0, 1), busy.clone()),
        ),
        None,
    );
    m.set_d(
        &cnt,
        Expr::mux(
            take.clone().or(bit_end.clone()),
            full,
            Expr::mux(busy, cnt.clone().sub(Expr::lit(1, cw)), cnt.clone()),
        ),
        None,
    );
    m.set_d(
        &bitn,
        Expr::mux(
            take.clone(),
            Expr::lit(0, 4),
            Expr::mux(
                bit_end.clone(),
                bitn.clone().add(Expr::lit(1, 4)),
                bitn.clone(),
            ),
        ),
        None,
    );
    // Load {stop=1, data, start=0}; shift right with ones coming in, so the line stays high
    // after the stop bit.
    m.set_d(
        &shift,
        Expr::mux(
            take.clone(),
            Expr::concat(vec![Expr::lit(1, 1), data, Expr::lit(0, 1)]),
            Expr::mux(
                bit_end,
                Expr::concat(vec![Expr::lit(1, 1), shift.slice(9, 1)]),
                shift.clone(),
            ),
        ),
        None,
    );
    m.assign(&ready_o, Expr::net("busy_q", u(1)).not());
    m.assign(&tx_o, shift.bit(0));
    m
}
