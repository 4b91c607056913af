//! The reply: what it is (latched when it starts) and the transmitter that sends it byte by
//! byte, with the STATUS snapshot, the IDENTIFY ROM and READ's output addresses.

use super::nets::{
    crc8_step, kind, l8, mux_tree, pick, st, Checks, Cmds, Dims, ErrLog, Frame, Ports, Replay,
    ReplyHead, State, Tx,
};
use crate::hw::u;
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::params::clog2;
use smartdeal_core::protocol as proto;

/// When a reply starts (a NAK, a checked request other than WRITE, or the end of a WRITE
/// batch), latch its code, payload kind and length, and READ's first address.
pub(super) fn reply_head(
    m: &mut Module,
    d: &Dims,
    fr: &Frame,
    c: &Cmds,
    chk: &Checks,
    rp: &Replay,
) -> ReplyHead {
    let (rw, oab) = (d.rw, d.oab);
    let (nak, chk_ok, exec_done) = (&chk.nak, &chk.chk_ok, &rp.exec_done);
    m.comment("Reply");
    let go_reply = m.wire(
        "go_reply",
        nak.clone()
            .or(chk_ok.clone().and(c.wr.clone().not()))
            .or(exec_done.clone()),
        "start sending a reply",
    );
    let rsp = m.reg_next(
        "rsp",
        Expr::mux(
            nak.clone(),
            l8(proto::RSP_NAK),
            Expr::concat(vec![Expr::lit(1, 1), fr.cmd.slice(6, 0)]),
        ),
        Some(go_reply.clone()),
        Reset::To(0),
        "reply code: request | 0x80, or 0xFF (NAK)",
    );
    let ok_kind = pick(
        Expr::lit(kind::STATUS, 2),
        vec![
            (c.id.clone(), Expr::lit(kind::IDENTIFY, 2)),
            (c.rd.clone(), Expr::lit(kind::READ, 2)),
        ],
    );
    let rkind = m.reg_next(
        "rkind",
        Expr::mux(
            nak.clone().or(exec_done.clone()),
            Expr::lit(kind::STATUS, 2),
            ok_kind,
        ),
        Some(go_reply.clone()),
        Reset::To(0),
        "reply payload: 0 status, 1 identify, 2 output bytes",
    );
    let st_len = Expr::lit(proto::STATUS_LEN as u128, rw);
    let ok_len = pick(
        st_len.clone(),
        vec![
            (c.id.clone(), Expr::lit(d.id.len() as u128, rw)),
            // 16 -> rw bits: rd_ok bounds the count by out_depth.
            (c.rd.clone(), chk.rd_count.slice(rw - 1, 0)),
        ],
    );
    let rlen = m.reg_next(
        "rlen",
        Expr::mux(nak.clone().or(exec_done.clone()), st_len, ok_len),
        Some(go_reply.clone()),
        Reset::To(0),
        "reply payload length",
    );
    let rbase = m.reg_next(
        "rbase",
        chk.rd_base.slice(oab - 1, 0), // 16 -> oab bits: rd_ok bounds the address
        Some(chk_ok.clone().and(c.rd.clone())),
        Reset::To(0),
        "READ: first output address",
    );
    ReplyHead {
        go_reply,
        rsp,
        rkind,
        rlen,
        rbase,
    }
}

/// The reply transmitter: one byte per free transmitter slot, `SYNC_RSP, code, LEN_HI,
/// LEN_LO, payload, CRC-8`; the status is snapshotted while the header goes out.
pub(super) fn reply_transmitter(
    m: &mut Module,
    d: &Dims,
    io: &Ports,
    state: &State,
    errs: &ErrLog,
    head: &ReplyHead,
) -> Tx {
    let xw = d.xw;
    let go_reply = &head.go_reply;
    let tidx = m.reg("tidx", u(xw), Reset::To(0), "reply byte being sent");
    let tcrc = m.reg("tcrc", u(8), Reset::To(0), "CRC-8 of the reply so far");
    let snap = m.reg(
        "snap",
        u(56),
        Reset::To(0),
        "status taken while the reply header goes out: flags, last error, error count, cycles",
    );
    let send = m.wire(
        "send",
        state.is(st::REPLY).and(io.tx_ready.clone()),
        "hand the next reply byte to the transmitter",
    );
    let last_idx = m.wire(
        "last_idx",
        head.rlen.zext(xw).add(Expr::lit(4, xw)), // rw -> xw bits: up to max_rlen + 4
        "index of the reply's CRC byte",
    );
    let pidx = m.wire(
        "pidx",
        tidx.clone().sub(Expr::lit(4, xw)),
        "payload byte index",
    );
    let rlen16 = m.wire("rlen16", head.rlen.zext(16), "reply length field");
    let ti = |n: u128| tidx.clone().eq(Expr::lit(n, xw));
    let pay_byte = payload_byte(m, d, io, &head.rkind, &snap, &pidx);
    let tbyte = m.wire(
        "tbyte",
        pick(
            pay_byte,
            vec![
                (ti(0), l8(proto::SYNC_RSP)),
                (ti(1), head.rsp.clone()),
                (ti(2), rlen16.slice(15, 8)),
                (ti(3), rlen16.slice(7, 0)),
                (tidx.clone().eq(last_idx.clone()), tcrc.clone()),
            ],
        ),
        "reply byte at tidx",
    );
    let tcrc_next = crc8_step(m, "tcrc_next", tcrc.clone(), tbyte.clone());
    let reply_done = m.wire(
        "reply_done",
        send.clone().and(tidx.clone().eq(last_idx.clone())),
        "the CRC byte goes out: back to IDLE",
    );
    m.set_d(
        &tidx,
        Expr::mux(
            go_reply.clone(),
            Expr::lit(0, xw),
            tidx.clone().add(Expr::lit(1, xw)),
        ),
        Some(go_reply.clone().or(send.clone())),
    );
    m.set_d(
        &tcrc,
        Expr::mux(go_reply.clone(), Expr::lit(0, 8), tcrc_next),
        Some(
            go_reply
                .clone()
                .or(send.clone().and(ti(0).not()).and(tidx.clone().ne(last_idx))),
        ),
    );
    let flags = Expr::concat(vec![
        Expr::lit(0, 5),
        io.aerr_i.clone(),
        io.done_i.clone(),
        io.busy_i.clone(),
    ]);
    m.set_d(
        &snap,
        Expr::concat(vec![
            flags,
            errs.last_err.clone(),
            errs.err_cnt.clone(),
            io.cycles_i.clone(),
        ]),
        Some(send.clone().and(ti(3))),
    );
    let rd_addr = read_address(m, d, &head.rbase, &pidx);
    Tx {
        send,
        tbyte,
        reply_done,
        rd_addr,
    }
}

/// The reply payload byte at `pidx`: STATUS from the snapshot, IDENTIFY from a ROM, READ from
/// the accelerator's output buffer.
pub(super) fn payload_byte(
    m: &mut Module,
    d: &Dims,
    io: &Ports,
    rkind: &Expr,
    snap: &Expr,
    pidx: &Expr,
) -> Expr {
    let status: Vec<Expr> = (0..proto::STATUS_LEN as u32)
        .map(|k| snap.slice(55 - 8 * k, 48 - 8 * k))
        .collect();
    let status_byte = mux_tree(pidx, 2, &status, 8);
    let iw = clog2(d.id.len() as u64);
    let id_rom: Vec<Expr> = d.id.iter().map(|&b| l8(b)).collect();
    let id_byte = mux_tree(pidx, iw - 1, &id_rom, 8);
    m.wire(
        "pay_byte",
        pick(
            status_byte,
            vec![
                (rkind.clone().eq(Expr::lit(kind::IDENTIFY, 2)), id_byte),
                (
                    rkind.clone().eq(Expr::lit(kind::READ, 2)),
                    io.rd_data_i.clone(),
                ),
            ],
        ),
        "reply payload byte at pidx",
    )
}

/// READ's output address for the payload byte at `pidx`.
pub(super) fn read_address(m: &mut Module, d: &Dims, rbase: &Expr, pidx: &Expr) -> Expr {
    let (oab, xw) = (d.oab, d.xw);
    let iw = clog2(d.id.len() as u64);
    let rd_addr = m.wire(
        "rd_addr",
        rbase.clone().add(pidx.slice(oab - 1, 0)),
        "READ: output address of the payload byte",
    );
    let used = oab.max(iw).max(3);
    if xw > used {
        m.unused(
            pidx.slice(xw - 1, used),
            "payload indices stay below out_depth",
        );
    }
    rd_addr
}
