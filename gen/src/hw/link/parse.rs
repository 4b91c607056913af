//! The frame receiver and parser (header fields, payload, inter-byte timeout) and the checks
//! made on the CRC byte, with the error record STATUS reports.

use super::nets::{
    crc8_step, l8, pick, st, Checks, Cmds, Dims, ErrLog, Events, Frame, Ports, State,
};
use crate::hw::u;
use crate::ir::{CmpOp, Expr, Module, Reset};
use smartdeal_core::protocol as proto;
use smartdeal_core::AccelConfig;

/// The frame receiver's registers: header fields, byte counters, the running CRC, the
/// payload shift register and the inter-byte timer.
pub(super) fn frame_registers(m: &mut Module, d: &Dims) -> Frame {
    let lw = d.lw;
    m.comment("Request parsing");
    let cmd = m.reg("cmd", u(8), Reset::To(0), "request command byte");
    let lenh = m.reg("lenh", u(8), Reset::To(0), "length, high byte");
    let len = m.reg("len", u(lw), Reset::To(0), "request payload length");
    let cnt = m.reg(
        "cnt",
        u(lw),
        Reset::To(0),
        "payload bytes received; in EXEC the buffer read pointer",
    );
    let crc = m.reg("crc", u(8), Reset::To(0), "CRC-8 of the request so far");
    let k7 = m.reg(
        "k7",
        u(3),
        Reset::To(0),
        "payload bytes modulo 7 (one tunnelled command is 7 bytes)",
    );
    let pl = m.reg(
        "pl",
        u(56),
        Reset::To(0),
        "the last 7 payload bytes, first most significant; in EXEC the command being assembled",
    );
    let tmo = m.reg(
        "tmo",
        u(d.tw),
        Reset::To(0),
        "clocks since the last byte of a frame",
    );
    Frame {
        cmd,
        lenh,
        len,
        cnt,
        crc,
        k7,
        pl,
        tmo,
    }
}

/// The frame parser's events: which field the received byte is, the length checks, framing
/// errors and the inter-byte timeout.
pub(super) fn frame_events(
    m: &mut Module,
    d: &Dims,
    io: &Ports,
    state: &State,
    fr: &Frame,
) -> Events {
    let (rxv, rxd, ferr) = (&io.rxv, &io.rxd, &io.ferr);
    let max_payload = d.sizes.max_payload();
    let receiving = m.wire(
        "receiving",
        state
            .is(st::IDLE)
            .not()
            .and(state.0.clone().cmp(CmpOp::Lt, Expr::lit(st::EXEC, 3))),
        "inside a request frame",
    );
    let e_sync = m.wire(
        "e_sync",
        state
            .is(st::IDLE)
            .and(rxv.clone())
            .and(rxd.clone().eq(l8(proto::SYNC_REQ))),
        "sync byte: a frame starts",
    );
    let e_cmd = m.wire("e_cmd", state.is(st::CMD).and(rxv.clone()), "command byte");
    let e_lenh = m.wire(
        "e_lenh",
        state.is(st::LEN_HI).and(rxv.clone()),
        "length, high byte",
    );
    let e_lenl = m.wire(
        "e_lenl",
        state.is(st::LEN_LO).and(rxv.clone()),
        "length, low byte",
    );
    let len_rx = m.wire(
        "len_rx",
        Expr::concat(vec![fr.lenh.clone(), rxd.clone()]),
        "the length, complete with its low byte",
    );
    let too_long = m.wire(
        "too_long",
        len_rx
            .clone()
            .cmp(CmpOp::Gt, Expr::lit(u128::from(max_payload), 16)),
        &format!("longer than the {max_payload}-byte buffer"),
    );
    let len_zero = m.wire(
        "len_zero",
        len_rx.clone().eq(Expr::lit(0, 16)),
        "no payload",
    );
    let e_pay = m.wire(
        "e_pay",
        state.is(st::PAYLOAD).and(rxv.clone()),
        "payload byte",
    );
    let pay_last = m.wire(
        "pay_last",
        fr.cnt.clone().add(Expr::lit(1, d.lw)).eq(fr.len.clone()),
        "this payload byte is the last",
    );
    let e_chk = m.wire("e_chk", state.is(st::CHECK).and(rxv.clone()), "CRC byte");
    let e_ferr = m.wire(
        "e_ferr",
        receiving.clone().and(ferr.clone()),
        "framing error inside a frame",
    );
    let e_ferr_idle = m.wire(
        "e_ferr_idle",
        state.is(st::IDLE).and(ferr.clone()),
        "framing error between frames: counted, not answered",
    );
    let e_tmo = inter_byte_timeout(m, d, io, fr, &receiving);
    Events {
        e_sync,
        e_cmd,
        e_lenh,
        e_lenl,
        len_rx,
        too_long,
        len_zero,
        e_pay,
        pay_last,
        e_chk,
        e_ferr,
        e_ferr_idle,
        e_tmo,
    }
}

/// The timer counts the clocks without a byte inside a frame; returns the event of its
/// reaching the timeout.
pub(super) fn inter_byte_timeout(
    m: &mut Module,
    d: &Dims,
    io: &Ports,
    fr: &Frame,
    receiving: &Expr,
) -> Expr {
    let tw = d.tw;
    let (rxv, ferr) = (&io.rxv, &io.ferr);
    let e_tmo = m.wire(
        "e_tmo",
        receiving
            .clone()
            .and(fr.tmo.clone().eq(Expr::lit(u128::from(d.tmo), tw)))
            .and(rxv.clone().not())
            .and(ferr.clone().not()),
        "the frame stalled for the inter-byte timeout",
    );
    m.set_d(
        &fr.tmo,
        Expr::mux(
            receiving.clone().and(rxv.clone().or(ferr.clone()).not()),
            fr.tmo.clone().add(Expr::lit(1, tw)),
            Expr::lit(0, tw),
        ),
        None,
    );
    e_tmo
}

/// The checks made on the CRC byte: CRC, known command, length, READ range, busy; and what a
/// failed frame (a check, a framing error, the timeout, an oversized length) answers.
pub(super) fn request_checks(
    m: &mut Module,
    cfg: &AccelConfig,
    d: &Dims,
    io: &Ports,
    fr: &Frame,
    ev: &Events,
) -> (Cmds, Checks) {
    let rxd = &io.rxd;
    m.comment("Request checks (on the CRC byte)");
    let crc_next = crc8_step(m, "crc_next", fr.crc.clone(), rxd.clone());
    let c = decode_command(m, fr);
    let len_ok = length_ok(m, d, fr, &c);
    let (rd_base, rd_count, rd_ok) = read_args(m, cfg, fr);
    let known =
        c.id.clone()
            .or(c.st.clone())
            .or(c.wr.clone())
            .or(c.run.clone())
            .or(c.rd.clone());
    let chk_code = m.wire(
        "chk_code",
        pick(
            l8(proto::err::NONE),
            vec![
                (rxd.clone().ne(fr.crc.clone()), l8(proto::err::BAD_CRC)),
                (known.not(), l8(proto::err::UNKNOWN_CMD)),
                (len_ok.not(), l8(proto::err::BAD_LEN)),
                (c.rd.clone().and(rd_ok.not()), l8(proto::err::BAD_ARG)),
                (
                    c.wr.clone().or(c.run.clone()).and(io.busy_i.clone()),
                    l8(proto::err::BUSY),
                ),
            ],
        ),
        "error found by the checks, 0 if none",
    );
    let chk_ok = m.wire(
        "chk_ok",
        ev.e_chk.clone().and(chk_code.clone().eq(l8(0))),
        "a valid request: execute it",
    );
    let nak = m.wire(
        "nak",
        ev.e_ferr
            .clone()
            .or(ev.e_tmo.clone())
            .or(ev.e_lenl.clone().and(ev.too_long.clone()))
            .or(ev.e_chk.clone().and(chk_code.clone().ne(l8(0)))),
        "the frame failed: answer with a NAK",
    );
    let nak_code = m.wire(
        "nak_code",
        pick(
            chk_code,
            vec![
                (ev.e_ferr.clone(), l8(proto::err::FRAMING)),
                (ev.e_tmo.clone(), l8(proto::err::TIMEOUT)),
                (ev.e_lenl.clone(), l8(proto::err::BAD_LEN)),
            ],
        ),
        "error code of the NAK",
    );
    let chk = Checks {
        crc_next,
        rd_base,
        rd_count,
        chk_ok,
        nak,
        nak_code,
    };
    (c, chk)
}

/// Command dispatch: one flag per known command, registered (the command byte is latched a
/// whole UART byte before anything reads the flags, so the compare gets its own cycle).
pub(super) fn decode_command(m: &mut Module, fr: &Frame) -> Cmds {
    let mut flag = |name: &str, c: u8| {
        m.reg_next(
            name,
            fr.cmd.clone().eq(l8(c)),
            None,
            Reset::To(0),
            "the latched command is this one",
        )
    };
    let id = flag("c_identify", proto::cmd::IDENTIFY);
    let st = flag("c_status", proto::cmd::STATUS);
    let wr = flag("c_write", proto::cmd::WRITE);
    let run = flag("c_run", proto::cmd::RUN);
    let rd = flag("c_read", proto::cmd::READ);
    Cmds {
        id,
        st,
        wr,
        run,
        rd,
    }
}

/// The payload length each command takes: none for IDENTIFY and STATUS, 3 bytes for RUN,
/// 4 for READ, whole 7-byte commands for WRITE.
pub(super) fn length_ok(m: &mut Module, d: &Dims, fr: &Frame, c: &Cmds) -> Expr {
    let len_is = |n: u128| fr.len.clone().eq(Expr::lit(n, d.lw));
    // Registered like the command flags: the length and the byte count settle a UART byte
    // before the CRC byte that checks them.
    m.reg_next(
        "len_ok",
        pick(
            Expr::lit(0, 1),
            vec![
                (c.id.clone().or(c.st.clone()), len_is(0)),
                (c.run.clone(), len_is(3)),
                (c.rd.clone(), len_is(4)),
                (
                    c.wr.clone(),
                    len_is(0).not().and(fr.k7.clone().eq(Expr::lit(0, 3))),
                ),
            ],
        ),
        None,
        Reset::To(0),
        "payload length right for the command",
    )
}

/// READ payload: address (16), count (16); the range must lie in the output buffer. Returns
/// `(rd_base, rd_count, rd_ok)`.
pub(super) fn read_args(m: &mut Module, cfg: &AccelConfig, fr: &Frame) -> (Expr, Expr, Expr) {
    let rd_base = m.wire("rd_base", fr.pl.slice(31, 16), "READ: first address");
    let rd_count = m.wire("rd_count", fr.pl.slice(15, 0), "READ: bytes");
    let rd_end = m.wire(
        "rd_end",
        rd_base.clone().zext(17).add(rd_count.clone().zext(17)), // 16 + 16 -> 17 bits
        "READ: one past the last address",
    );
    // Registered: the payload settles a whole UART byte before the CRC byte that checks it,
    // so the 17-bit add and compare get their own cycle.
    let rd_ok = m.reg_next(
        "rd_ok",
        rd_end.cmp(CmpOp::Le, Expr::lit(u128::from(cfg.out_depth), 17)),
        None,
        Reset::To(0),
        "READ range inside the output buffer (of the payload one cycle ago)",
    );
    (rd_base, rd_count, rd_ok)
}

/// Every NAK and every framing error between frames is recorded: the last code and a count.
pub(super) fn error_log(m: &mut Module, ev: &Events, chk: &Checks) -> ErrLog {
    let any_err = m.wire(
        "any_err",
        chk.nak.clone().or(ev.e_ferr_idle.clone()),
        "an error to record",
    );
    let last_err = m.reg_next(
        "last_err",
        Expr::mux(
            ev.e_ferr_idle.clone(),
            l8(proto::err::FRAMING),
            chk.nak_code.clone(),
        ),
        Some(any_err.clone()),
        Reset::To(0),
        "code of the most recent error",
    );
    let err_cnt = m.reg("err_cnt", u(8), Reset::To(0), "errors since reset (wraps)");
    m.set_d(
        &err_cnt,
        err_cnt.clone().add(Expr::lit(1, 8)),
        Some(any_err),
    );
    ErrLog { last_err, err_cnt }
}

/// The header fields and the running CRC (cleared by the sync byte, over CMD..PAYLOAD).
pub(super) fn latch_header(
    m: &mut Module,
    d: &Dims,
    io: &Ports,
    fr: &Frame,
    ev: &Events,
    crc_next: Expr,
) {
    let rxd = &io.rxd;
    m.set_d(
        &fr.crc,
        Expr::mux(ev.e_sync.clone(), Expr::lit(0, 8), crc_next),
        Some(
            ev.e_sync
                .clone()
                .or(ev.e_cmd.clone())
                .or(ev.e_lenh.clone())
                .or(ev.e_lenl.clone())
                .or(ev.e_pay.clone()),
        ),
    );
    m.set_d(&fr.cmd, rxd.clone(), Some(ev.e_cmd.clone()));
    m.set_d(&fr.lenh, rxd.clone(), Some(ev.e_lenh.clone()));
    // 16 -> lw bits: a longer length is rejected (too_long) before len is used.
    m.set_d(
        &fr.len,
        ev.len_rx.slice(d.lw - 1, 0),
        Some(ev.e_lenl.clone()),
    );
}
