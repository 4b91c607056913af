//! The frame receiver and parser (header fields, payload, inter-byte timeout) and the checks
//! made on the CRC byte, with the error record STATUS reports.
//!
//! Timing: the received byte is registered with its compares (`byte_stage`) and every check
//! the CRC byte needs is a flop before it arrives, so no decision goes through a wide compare.
//! The engine therefore acts one cycle after the receiver, decides a complete frame one cycle
//! after its CRC byte (VERIFY), and latches a failure's code for one cycle (FAIL) before the
//! reply starts.

use super::nets::{
    crc8_step, l8, pick, st, Byte, Checks, Cmds, Dims, ErrLog, Events, Frame, Ports, State,
};
use crate::hw::u;
use crate::ir::{CmpOp, Expr, Module, Reset};
use smartdeal_core::params::clog2;
use smartdeal_core::protocol as proto;
use smartdeal_core::AccelConfig;

/// The frame receiver's registers: header fields, byte counters, the running CRC and the
/// payload shift register.
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
    Frame {
        cmd,
        lenh,
        len,
        cnt,
        crc,
        k7,
        pl,
    }
}

/// The received byte one cycle after the receiver, with its compares: sync byte, the length
/// low byte against the maximum, and the CRC byte against the running CRC. The receiver's
/// `data_o` holds the byte for at least half a bit time after `valid_o`, and the running CRC
/// last changed a whole byte earlier, so each compare has a cycle of its own.
pub(super) fn byte_stage(m: &mut Module, d: &Dims, io: &Ports, fr: &Frame) -> Byte {
    m.comment("The received byte, registered with its compares");
    let (rxv, rxd) = (&io.rxv, &io.rxd);
    let max_payload = d.sizes.max_payload();
    let max_hi = u128::from(max_payload >> 8);
    let max_lo = u128::from(max_payload & 0xff);
    // The length high byte's compares, registered: it was latched a whole byte before the
    // low byte.
    let lenh_gt = m.reg_next(
        "lenh_gt",
        fr.lenh.clone().cmp(CmpOp::Gt, Expr::lit(max_hi, 8)),
        None,
        Reset::To(0),
        "length high byte above the maximum's",
    );
    let lenh_eq = m.reg_next(
        "lenh_eq",
        fr.lenh.clone().eq(Expr::lit(max_hi, 8)),
        None,
        Reset::To(0),
        "length high byte equal to the maximum's",
    );
    let lenh_zero = m.reg_next(
        "lenh_zero",
        fr.lenh.clone().eq(l8(0)),
        None,
        Reset::To(0),
        "length high byte 0",
    );
    let v = m.reg_next(
        "bv",
        rxv.clone(),
        None,
        Reset::To(0),
        "bd_q holds a newly received byte (one cycle)",
    );
    let mut flag =
        |name: &str, e: Expr, doc: &str| m.reg_next(name, e, Some(rxv.clone()), Reset::To(0), doc);
    let dq = flag("bd", rxd.clone(), "the received byte");
    let sync = flag(
        "bsync",
        rxd.clone().eq(l8(proto::SYNC_REQ)),
        "bd_q is the request sync byte",
    );
    // A maximum whose low byte is 0xFF: no low byte is above it (and the compare would be
    // constant).
    let lo_gt = if max_lo == 0xff {
        Expr::lit(0, 1)
    } else {
        rxd.clone().cmp(CmpOp::Gt, Expr::lit(max_lo, 8))
    };
    let len_long = flag(
        "blen_long",
        lenh_gt.or(lenh_eq.and(lo_gt)),
        &format!("with bd_q as its low byte, the length is over the {max_payload}-byte buffer"),
    );
    let len_zero = flag(
        "blen_zero",
        lenh_zero.and(rxd.clone().eq(l8(0))),
        "with bd_q as its low byte, the length is 0",
    );
    let crc_eq = flag(
        "bcrc_eq",
        rxd.clone().eq(fr.crc.clone()),
        "bd_q equals the CRC of the request before it",
    );
    let ferr = m.reg_next(
        "bferr",
        io.ferr.clone(),
        None,
        Reset::To(0),
        "the receiver saw a bad stop bit (one cycle)",
    );
    Byte {
        v,
        d: dq,
        ferr,
        sync,
        len_long,
        len_zero,
        crc_eq,
    }
}

/// The frame parser's events: which field the received byte is, the length checks, framing
/// errors and the inter-byte timeout.
pub(super) fn frame_events(
    m: &mut Module,
    d: &Dims,
    state: &State,
    fr: &Frame,
    b: &Byte,
) -> Events {
    // A flop (its next value is the OR of the receiving states' next bits, in `next_state`),
    // so the framing-error and timeout decisions do not decode five state bits.
    let receiving = m.reg(
        "receiving",
        u(1),
        Reset::To(0),
        "inside a request frame (CMD .. CHECK)",
    );
    let on = |s: u32| state.is(s).and(b.v.clone());
    let e_sync = m.wire(
        "e_sync",
        on(st::IDLE).and(b.sync.clone()),
        "sync byte: a frame starts",
    );
    let e_cmd = m.wire("e_cmd", on(st::CMD), "command byte");
    let e_lenh = m.wire("e_lenh", on(st::LEN_HI), "length, high byte");
    let e_lenl = m.wire("e_lenl", on(st::LEN_LO), "length, low byte");
    let e_pay = m.wire("e_pay", on(st::PAYLOAD), "payload byte");
    // Registered: cnt and len last changed a whole byte earlier.
    let pay_last = m.reg_next(
        "pay_last",
        fr.cnt.clone().add(Expr::lit(1, d.lw)).eq(fr.len.clone()),
        None,
        Reset::To(0),
        "the next payload byte is the last",
    );
    let e_chk = m.wire("e_chk", on(st::CHECK), "CRC byte");
    let e_ferr = m.wire(
        "e_ferr",
        receiving.clone().and(b.ferr.clone()),
        "framing error inside a frame",
    );
    let e_ferr_idle = m.wire(
        "e_ferr_idle",
        state.is(st::IDLE).and(b.ferr.clone()),
        "framing error between frames: counted, not answered",
    );
    let (e_tmo, tmo_hit) = inter_byte_timeout(m, d, b, &receiving);
    let ev_rx = m.wire(
        "ev_rx",
        b.v.clone().or(b.ferr.clone()).or(tmo_hit),
        "a byte, a framing error or the timeout: a receiving state ends",
    );
    Events {
        e_sync,
        e_cmd,
        e_lenh,
        e_lenl,
        too_long: b.len_long.clone(),
        len_zero: b.len_zero.clone(),
        e_pay,
        pay_last,
        e_chk,
        e_ferr,
        e_ferr_idle,
        e_tmo,
        ev_rx,
        receiving,
    }
}

/// The timer counts the clocks without a byte inside a frame; returns the event of its
/// reaching the timeout and the registered "the timer is at the timeout" flag.
pub(super) fn inter_byte_timeout(
    m: &mut Module,
    d: &Dims,
    b: &Byte,
    receiving: &Expr,
) -> (Expr, Expr) {
    let tw = d.tw;
    let tmo = m.reg(
        "tmo",
        u(tw),
        Reset::To(0),
        "clocks since the last byte of a frame",
    );
    let count = m.wire(
        "tmo_count",
        receiving.clone().and(b.v.clone().or(b.ferr.clone()).not()),
        "inside a frame, no byte this cycle: the timer counts",
    );
    m.set_d(
        &tmo,
        Expr::mux(
            count.clone(),
            tmo.clone().add(Expr::lit(1, tw)),
            Expr::lit(0, tw),
        ),
        None,
    );
    // tmo_q reaches the timeout only by counting up from timeout - 1 (any other cycle clears
    // it), so this flop is `tmo_q == timeout` without the compare on the decision's path.
    let hit = m.reg_next(
        "tmo_hit",
        count.and(tmo.eq(Expr::lit(u128::from(d.tmo - 1), tw))),
        None,
        Reset::To(0),
        "tmo_q is at the inter-byte timeout (and so inside a frame)",
    );
    let e_tmo = m.wire(
        "e_tmo",
        hit.clone().and(b.v.clone().not()).and(b.ferr.clone().not()),
        "the frame stalled for the inter-byte timeout",
    );
    (e_tmo, hit)
}

/// The checks made on the CRC byte: CRC, known command, length, READ range, busy, each a flop
/// before VERIFY reads their priority-encoded outcome; and what a failed frame (a check, a
/// framing error, the timeout, an oversized length) answers.
#[allow(clippy::too_many_arguments)]
pub(super) fn request_checks(
    m: &mut Module,
    cfg: &AccelConfig,
    d: &Dims,
    io: &Ports,
    state: &State,
    fr: &Frame,
    b: &Byte,
    ev: &Events,
) -> (Cmds, Checks) {
    m.comment("Request checks (on the CRC byte, decided one cycle later in VERIFY)");
    let crc_next = crc8_step(m, "crc_next", fr.crc.clone(), b.d.clone());
    let (c, known) = decode_command(m, fr);
    let len_ok = length_ok(m, d, fr, &c);
    let (rd_base, rd_count, rd_ok) = read_args(m, cfg, fr);
    let rd_last = m.reg_next(
        "rd_last",
        super::nets::fit(&rd_count, d.xw).add(Expr::lit(4, d.xw)),
        None,
        Reset::To(0),
        "READ: index of the reply's CRC byte, count + 4 (the payload settled a byte earlier)",
    );
    let busy = m.reg_next(
        "busy",
        io.busy_i.clone(),
        None,
        Reset::To(0),
        "accelerator busy, registered",
    );
    let bad_crc = b.crc_eq.clone().not();
    let bad_arg = c.rd.clone().and(rd_ok.not());
    let bad_busy = c.wr.clone().or(c.run.clone()).and(busy);
    // Free-running: in VERIFY these hold the CRC byte's compare (bcrc_eq_q of the cycle
    // before) and the flags that settled during the frame.
    let chk_code = m.reg_next(
        "chk_code",
        pick(
            l8(proto::err::NONE),
            vec![
                (bad_crc.clone(), l8(proto::err::BAD_CRC)),
                (known.clone().not(), l8(proto::err::UNKNOWN_CMD)),
                (len_ok.clone().not(), l8(proto::err::BAD_LEN)),
                (bad_arg.clone(), l8(proto::err::BAD_ARG)),
                (bad_busy.clone(), l8(proto::err::BUSY)),
            ],
        ),
        None,
        Reset::To(0),
        "error found by the checks, 0 if none",
    );
    let bad = m.wire(
        "bad",
        bad_crc
            .or(known.not())
            .or(len_ok.not())
            .or(bad_arg)
            .or(bad_busy),
        "a check fails (chk_code_d is not 0)",
    );
    let chk_bad = m.reg_next(
        "chk_bad",
        bad.clone(),
        None,
        Reset::To(0),
        "a check failed (chk_code_q is not 0)",
    );
    // What VERIFY does on success, registered with the checks so each is one flop there.
    let mut ok_flag = |name: &str, e: Expr, doc: &str| {
        m.reg_next(name, bad.clone().not().and(e), None, Reset::To(0), doc)
    };
    let ok_wr = ok_flag("ok_write", c.wr.clone(), "the checks pass for a WRITE");
    let ok_run = ok_flag("ok_run", c.run.clone(), "the checks pass for a RUN");
    let ok_reply = ok_flag(
        "ok_reply",
        c.wr.clone().not(),
        "the checks pass for a request answered at once (not WRITE)",
    );
    let verify = state.is(st::VERIFY);
    let exec_start = m.wire(
        "exec_start",
        verify.clone().and(ok_wr),
        "a checked WRITE: replay its payload",
    );
    let run_start = m.wire(
        "run_start",
        verify.clone().and(ok_run),
        "a checked RUN: issue its START",
    );
    let fail = m.wire(
        "fail",
        ev.e_ferr
            .clone()
            .or(ev.e_tmo.clone())
            .or(ev.e_lenl.clone().and(ev.too_long.clone()))
            .or(verify.clone().and(chk_bad)),
        "the frame failed: answer with a NAK",
    );
    let fail_code = m.wire(
        "fail_code",
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
    // Declared by the WRITE replay (`replay::write_replay`), which needs chk_ok first.
    let exec_done = Expr::net("exec_done", u(1));
    let in_fail = state.is(st::FAIL);
    let to_head = m.wire(
        "to_head",
        in_fail
            .clone()
            .or(verify.clone().and(ok_reply))
            .or(exec_done),
        "a reply starts: HEAD is next",
    );
    let nak = m.reg_next(
        "nak",
        in_fail,
        Some(to_head.clone()),
        Reset::To(0),
        "the reply being sent is a NAK",
    );
    let nak_code = m.reg_next(
        "nak_code",
        fail_code,
        Some(fail.clone()),
        Reset::To(0),
        "error code of the NAK",
    );
    let chk = Checks {
        crc_next,
        rd_base,
        rd_count,
        rd_last,
        exec_start,
        run_start,
        fail,
        to_head,
        nak,
        nak_code,
    };
    (c, chk)
}

/// Command dispatch: one flag per known command, registered (the command byte is latched a
/// whole UART byte before anything reads the flags, so the compare gets its own cycle).
/// Returns the flags and "the command is known".
pub(super) fn decode_command(m: &mut Module, fr: &Frame) -> (Cmds, Expr) {
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
    let codes = [
        proto::cmd::IDENTIFY,
        proto::cmd::STATUS,
        proto::cmd::WRITE,
        proto::cmd::RUN,
        proto::cmd::READ,
    ];
    let any = codes
        .iter()
        .map(|&k| fr.cmd.clone().eq(l8(k)))
        .reduce(Expr::or)
        .expect("five commands");
    let known = m.reg_next(
        "c_known",
        any,
        None,
        Reset::To(0),
        "the latched command is a known one",
    );
    (
        Cmds {
            id,
            st,
            wr,
            run,
            rd,
        },
        known,
    )
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
    // Two registered stages, the add then the compare: the payload settles a whole UART byte
    // before the CRC byte that checks it. Only the low `w` bits are added: a base or count of
    // 2^w or more is out of range by itself (2^w > out_depth).
    let w = (clog2(u64::from(cfg.out_depth)) + 1).min(16);
    let (sum, hi_zero) = if w < 16 {
        let hz = rd_base
            .slice(15, w)
            .eq(Expr::lit(0, 16 - w))
            .and(rd_count.slice(15, w).eq(Expr::lit(0, 16 - w)));
        let sum = rd_base
            .slice(w - 1, 0)
            .zext(w + 1)
            .add(rd_count.slice(w - 1, 0).zext(w + 1)); // w + w -> w + 1 bits
        (sum, hz)
    } else {
        let sum = rd_base.clone().zext(17).add(rd_count.clone().zext(17)); // 16 + 16 -> 17 bits
        (sum, Expr::lit(1, 1))
    };
    let rd_end = m.reg_next(
        "rd_end",
        sum,
        None,
        Reset::To(0),
        "READ: one past the last address, low bits (of the payload one cycle ago)",
    );
    let rd_small = m.reg_next(
        "rd_small",
        hi_zero,
        None,
        Reset::To(0),
        "READ: address and count both below 2 * out_depth (of the payload one cycle ago)",
    );
    let rd_ok = m.reg_next(
        "rd_ok",
        rd_small.and(rd_end.cmp(CmpOp::Le, Expr::lit(u128::from(cfg.out_depth), w + 1))),
        None,
        Reset::To(0),
        "READ range inside the output buffer (of the payload two cycles ago)",
    );
    (rd_base, rd_count, rd_ok)
}

/// Every NAK (logged in HEAD, from the registered code) and every framing error between
/// frames is recorded: the last code and a count.
pub(super) fn error_log(m: &mut Module, state: &State, ev: &Events, chk: &Checks) -> ErrLog {
    let any_err = m.wire(
        "any_err",
        state
            .is(st::HEAD)
            .and(chk.nak.clone())
            .or(ev.e_ferr_idle.clone()),
        "an error to record",
    );
    // HEAD and IDLE exclude each other, so the framing code is only taken between frames.
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
        Some(any_err.clone()),
    );
    let err_seen = m.reg_next(
        "err_seen",
        Expr::lit(1, 1),
        Some(any_err),
        Reset::To(0),
        "an error was recorded since reset (last_err_q is not 0)",
    );
    ErrLog {
        last_err,
        err_cnt,
        err_seen,
    }
}

/// The header fields and the running CRC (cleared by the sync byte, over CMD..PAYLOAD).
pub(super) fn latch_header(
    m: &mut Module,
    d: &Dims,
    fr: &Frame,
    b: &Byte,
    ev: &Events,
    crc_next: Expr,
) {
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
    m.set_d(&fr.cmd, b.d.clone(), Some(ev.e_cmd.clone()));
    m.set_d(&fr.lenh, b.d.clone(), Some(ev.e_lenh.clone()));
    // 16 -> lw bits: a longer length is rejected (too_long) before len is used.
    let low = if d.lw > 8 {
        Expr::concat(vec![fr.lenh.slice(d.lw - 9, 0), b.d.clone()])
    } else {
        b.d.slice(d.lw - 1, 0)
    };
    let len_rx = m.wire(
        "len_rx",
        low,
        "the length's low lw bits, complete with its low byte",
    );
    m.set_d(&fr.len, len_rx, Some(ev.e_lenl.clone()));
}
