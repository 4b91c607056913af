//! UART receiver, 8N1: a 2-flop synchronizer, start detection on a falling edge, mid-bit
//! sampling with a clocks-per-bit counter, and a framing-error pulse for a bad stop bit.

use super::{config_line, u};
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::params::clog2;
use smartdeal_core::protocol::BoardLink;
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_uart_rx";

pub fn module(cfg: &AccelConfig, link: &BoardLink) -> Module {
    let cpb = link.clks_per_bit();
    // The counter holds -1..=cpb-2: its bits for 0..=cpb-2 and a sign bit, the sample flag.
    let cw = clog2(u64::from(cpb - 1)).max(1) + 1;
    let mut m = Module::new(
        NAME,
        &format!(
            "UART receiver, 8N1, {cpb} clocks per bit. rx_i is synchronized with two flops; a\n\
             falling edge starts a byte, sampled in the middle of each bit. valid_o pulses with\n\
             data_o when the stop bit is 1, ferr_o pulses instead when it is 0. A start bit that is\n\
             high again at its middle is ignored (glitch); a line held low (break) gives one\n\
             ferr_o, then nothing until it has been high."
        ),
        &format!("{} | {}", link.config_line(), config_line(cfg)),
    );
    m.clock_reset();
    let rx = m.input("rx_i", u(1), "serial input (idle high), asynchronous");
    let valid_o = m.output("valid_o", u(1), "a byte arrived (one cycle)");
    let data_o = m.output("data_o", u(8), "the byte, valid with valid_o");
    let ferr_o = m.output(
        "ferr_o",
        u(1),
        "a byte ended with a bad stop bit (one cycle)",
    );

    m.comment("Synchronizer (the line idles high, so the flops reset to 1)");
    let s1 = m.reg_next("sync1", rx, None, Reset::To(1), "first synchronizer flop");
    let s2 = m.reg_next("sync2", s1, None, Reset::To(1), "second synchronizer flop");
    let prev = m.reg_next(
        "prev",
        s2.clone(),
        None,
        Reset::To(1),
        "the synchronized line one cycle earlier (edge detection)",
    );

    m.comment("Bit timing");
    let busy = m.reg("busy", u(1), Reset::To(0), "receiving a byte");
    let cnt = m.reg(
        "cnt",
        u(cw),
        Reset::To(0),
        "clocks to the next sample, minus one; negative (the sign bit) at the sample",
    );
    let bitn = m.reg(
        "bitn",
        u(4),
        Reset::To(0),
        "bit being received: 0 start, 1..8 data, 9 stop",
    );
    let shift = m.reg("shift", u(8), Reset::None, "data bits, LSB first");
    let start = m.wire(
        "start",
        busy.clone().not().and(prev.clone()).and(s2.clone().not()),
        "falling edge while idle",
    );
    // The sign bit rather than a compare with 0: the sample decision is one flop.
    let sample = m.wire(
        "sample",
        busy.clone().and(cnt.bit(cw - 1)),
        "the middle of a bit",
    );
    let is_bit = |n: u128| bitn.clone().eq(Expr::lit(n, 4));
    let false_start = m.wire(
        "false_start",
        sample.clone().and(is_bit(0)).and(s2.clone()),
        "the start bit is high again at its middle",
    );
    let stop = m.wire(
        "stop",
        sample.clone().and(is_bit(9)),
        "sampling the stop bit",
    );
    // First sample half a bit after the edge (the synchronizer adds 2 cycles, the edge detector
    // 1, which cpb >= 4 absorbs), then one every cpb clocks: loaded with n - 1, the counter
    // is negative n cycles later.
    let half = Expr::lit(u128::from((cpb / 2).saturating_sub(2)), cw);
    let full = Expr::lit(u128::from(cpb - 2), cw);
    m.set_d(
        &busy,
        Expr::mux(
            start.clone(),
            Expr::lit(1, 1),
            Expr::mux(
                false_start.clone().or(stop.clone()),
                Expr::lit(0, 1),
                busy.clone(),
            ),
        ),
        None,
    );
    m.set_d(
        &cnt,
        Expr::mux(
            start.clone(),
            half,
            Expr::mux(
                sample.clone(),
                full,
                Expr::mux(busy.clone(), cnt.clone().sub(Expr::lit(1, cw)), cnt.clone()),
            ),
        ),
        None,
    );
    m.set_d(
        &bitn,
        Expr::mux(
            start,
            Expr::lit(0, 4),
            Expr::mux(
                sample.clone(),
                bitn.clone().add(Expr::lit(1, 4)),
                bitn.clone(),
            ),
        ),
        None,
    );
    let data_bit = m.wire(
        "data_bit",
        sample
            .and(bitn.clone().eq(Expr::lit(0, 4)).not())
            .and(is_bit(9).not()),
        "sampling data bit 1..8",
    );
    // LSB first: each new bit enters at the top and moves down.
    m.set_d(
        &shift,
        Expr::concat(vec![s2.clone(), shift.slice(7, 1)]),
        Some(data_bit),
    );
    let valid = m.reg_next(
        "valid",
        stop.clone().and(s2.clone()),
        None,
        Reset::To(0),
        "stop bit 1: a byte",
    );
    let ferr = m.reg_next(
        "ferr",
        stop.and(s2.not()),
        None,
        Reset::To(0),
        "stop bit 0: framing error",
    );
    m.assign(&valid_o, valid);
    m.assign(&ferr_o, ferr);
    m.assign(&data_o, shift);
    m
}
