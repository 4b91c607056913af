//! WRITE tunnelling and RUN: a checked WRITE payload is replayed from the buffer as 7-byte
//! commands into the accelerator's command port; a checked RUN becomes one START command.

use super::nets::{pick, st, Byte, Checks, Dims, Events, Frame, Replay, State};
use crate::hw::u;
use crate::ir::{Expr, Module, Reset};

/// WRITE tunnelling: the payload is buffered while it arrives; once its CRC has been checked
/// (EXEC) it is read back byte by byte into `pl`, and every 7th byte issues the assembled
/// command (one command per 7 clocks).
#[allow(clippy::too_many_arguments)]
pub(super) fn write_replay(
    m: &mut Module,
    d: &Dims,
    state: &State,
    fr: &Frame,
    b: &Byte,
    ev: &Events,
    chk: &Checks,
) -> Replay {
    let lw = d.lw;
    m.comment("WRITE replay: buffer -> 7-byte commands -> accelerator command port");
    let buf_rdata = m.mem(
        "buf",
        8,
        d.sizes.buf_depth,
        ev.e_pay.clone(),
        fr.cnt.clone(),
        b.d.clone(),
        fr.cnt.clone(),
    );
    // The bytes still to fetch, minus one, with a sign bit: fetching stops when it goes
    // negative, so the loop's condition is one flop rather than a compare of cnt with len.
    let len_m1 = m.reg_next(
        "len_m1",
        fr.len.zext(lw + 1).sub(Expr::lit(1, lw + 1)), // lw -> lw + 1 bits, len >= 7 when used
        None,
        Reset::To(0),
        "len - 1 (len settled a byte before the CRC)",
    );
    let rem = m.reg(
        "rem",
        u(lw + 1),
        Reset::To(0),
        "EXEC: payload bytes left to fetch, minus one (negative: all fetched)",
    );
    let start = chk.exec_start.clone();
    let fetch = m.wire(
        "fetch",
        state.is(st::EXEC).and(rem.bit(lw).not()),
        "EXEC: read the next payload byte",
    );
    m.set_d(
        &rem,
        Expr::mux(start.clone(), len_m1, rem.clone().sub(Expr::lit(1, lw + 1))),
        Some(start.or(fetch.clone())),
    );
    let rv = m.reg_next(
        "rv",
        fetch.clone(),
        None,
        Reset::To(0),
        "buf_rdata_q holds a payload byte",
    );
    let k7_wrap = m.wire(
        "k7_wrap",
        fr.k7.clone().eq(Expr::lit(6, 3)),
        "7th byte of a command",
    );
    let shift_in = m.wire(
        "shift_in",
        ev.e_pay.clone().or(rv.clone()),
        "a payload byte enters pl (receiving, or replaying)",
    );
    let fire = m.reg(
        "fire",
        u(1),
        Reset::To(0),
        "issue the command in pl this cycle",
    );
    let exec_done = m.wire(
        "exec_done",
        state
            .is(st::EXEC)
            .and(rem.bit(lw))
            .and(rv.clone().not())
            .and(fire.clone().not()),
        "every command of the batch has been issued",
    );
    m.set_d(
        &fire,
        rv.clone().and(k7_wrap.clone()).or(chk.run_start.clone()),
        None,
    );
    let shift_byte = m.wire(
        "shift_byte",
        Expr::mux(rv.clone(), buf_rdata, b.d.clone()),
        "payload byte entering pl",
    );
    Replay {
        fetch,
        k7_wrap,
        shift_in,
        fire,
        exec_done,
        shift_byte,
    }
}

/// `pl` shifts in payload bytes (received, or replayed from the buffer) and holds the
/// command being issued; a checked RUN becomes one tunnelled START. `k7` counts bytes within
/// a command; `cnt` counts payload bytes, then is the buffer's read pointer in EXEC.
pub(super) fn assemble_commands(
    m: &mut Module,
    d: &Dims,
    fr: &Frame,
    ev: &Events,
    chk: &Checks,
    rp: &Replay,
) {
    let lw = d.lw;
    let run_ok = chk.run_start.clone();
    // RUN becomes the tunnelled command {START, last entry, data = flags}.
    let run_cmd = Expr::concat(vec![
        Expr::lit(u128::from(crate::hw::host_if::op::START), 8),
        fr.pl.slice(23, 8),
        Expr::lit(0, 24),
        fr.pl.slice(7, 0),
    ]);
    m.set_d(
        &fr.pl,
        Expr::mux(
            run_ok.clone(),
            run_cmd,
            Expr::concat(vec![fr.pl.slice(47, 0), rp.shift_byte.clone()]),
        ),
        Some(rp.shift_in.clone().or(run_ok)),
    );
    m.set_d(
        &fr.k7,
        Expr::mux(
            ev.e_sync.clone(),
            Expr::lit(0, 3),
            Expr::mux(
                rp.k7_wrap.clone(),
                Expr::lit(0, 3),
                fr.k7.clone().add(Expr::lit(1, 3)),
            ),
        ),
        Some(ev.e_sync.clone().or(rp.shift_in.clone())),
    );
    m.set_d(
        &fr.cnt,
        pick(
            fr.cnt.clone(),
            vec![
                (ev.e_sync.clone(), Expr::lit(0, lw)),
                (chk.exec_start.clone(), Expr::lit(0, lw)),
                (
                    ev.e_pay.clone().or(rp.fetch.clone()),
                    fr.cnt.clone().add(Expr::lit(1, lw)),
                ),
            ],
        ),
        None,
    );
    m.unused(
        fr.pl.slice(55, 51),
        "opcode bits 7..3 of a tunnelled command are ignored",
    );
}
