//! The reply: what it is (latched when it starts) and the transmitter that sends it byte by
//! byte, with the STATUS snapshot, the IDENTIFY ROM and READ's output addresses.

use super::nets::{
    crc8_step, kind, l8, mux_tree, pick, st, Checks, Cmds, Dims, ErrLog, Frame, Ports, ReplyHead,
    State, Tx,
};
use crate::hw::u;
use crate::ir::{CmpOp, Expr, Module, Reset};
use smartdeal_core::params::clog2;
use smartdeal_core::protocol as proto;

/// In HEAD (the cycle after the decision) latch the reply's code, payload kind and length,
/// the index of its CRC byte, and READ's first address, all from flops.
pub(super) fn reply_head(
    m: &mut Module,
    d: &Dims,
    state: &State,
    fr: &Frame,
    c: &Cmds,
    chk: &Checks,
) -> ReplyHead {
    let (rw, oab, xw) = (d.rw, d.oab, d.xw);
    let nak = &chk.nak;
    m.comment("Reply");
    let go_reply = m.wire("go_reply", state.is(st::HEAD), "HEAD: latch the reply");
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
    // A WRITE (after its replay) answers with the status, like STATUS and a NAK.
    let ok_kind = pick(
        Expr::lit(kind::STATUS, 2),
        vec![
            (c.id.clone(), Expr::lit(kind::IDENTIFY, 2)),
            (c.rd.clone(), Expr::lit(kind::READ, 2)),
        ],
    );
    let rkind = m.reg_next(
        "rkind",
        Expr::mux(nak.clone(), Expr::lit(kind::STATUS, 2), ok_kind),
        Some(go_reply.clone()),
        Reset::To(0),
        "reply payload: 0 status, 1 identify, 2 output bytes",
    );
    let st_len = proto::STATUS_LEN as u128;
    let id_len = d.id.len() as u128;
    let ok_len = pick(
        Expr::lit(st_len, rw),
        vec![
            (c.id.clone(), Expr::lit(id_len, rw)),
            // 16 -> rw bits: rd_ok bounds the count by out_depth.
            (c.rd.clone(), chk.rd_count.slice(rw - 1, 0)),
        ],
    );
    let rlen = m.reg_next(
        "rlen",
        Expr::mux(nak.clone(), Expr::lit(st_len, rw), ok_len),
        Some(go_reply.clone()),
        Reset::To(0),
        "reply payload length",
    );
    let ok_last = pick(
        Expr::lit(st_len + 4, xw),
        vec![
            (c.id.clone(), Expr::lit(id_len + 4, xw)),
            (c.rd.clone(), chk.rd_last.clone()),
        ],
    );
    let last_idx = m.reg_next(
        "last_idx",
        Expr::mux(nak.clone(), Expr::lit(st_len + 4, xw), ok_last),
        Some(go_reply.clone()),
        Reset::To(0),
        "index of the reply's CRC byte: payload length + 4",
    );
    // 16 -> oab bits: rd_ok bounds the address. Minus 4 so that rbase_q + tidx_q addresses
    // the payload byte at reply index tidx_q (the payload follows 4 header bytes).
    let rbase = m.reg_next(
        "rbase",
        chk.rd_base.slice(oab - 1, 0).sub(Expr::lit(4, oab)),
        Some(go_reply.clone()),
        Reset::To(0),
        "READ: first output address, minus 4 (mod 2^oab)",
    );
    ReplyHead {
        go_reply,
        rsp,
        rkind,
        rlen,
        rbase,
        last_idx,
    }
}

/// The reply transmitter: `SYNC_RSP, code, LEN_HI, LEN_LO, payload, CRC-8`, one byte per
/// free transmitter slot; the status is snapshotted while the header goes out.
///
/// Each byte is prepared in two register stages before it is handed over: the index compares
/// and the tables (header, IDENTIFY ROM, each indexed by `tidx` directly; the status is a shift
/// register), then the byte itself, `tbyte_q`, which drives the transmitter and the reply CRC.
/// READ's output address is a register too, so its data arrives from the accelerator two
/// cycles after the index moves (three with the accelerator's `extra_stages`). `hold` keeps the
/// next byte back until `tbyte_q` is that byte: 4 (5) clocks per byte, far below the
/// transmitter's 10 bit times.
pub(super) fn reply_transmitter(
    m: &mut Module,
    d: &Dims,
    io: &Ports,
    state: &State,
    errs: &ErrLog,
    head: &ReplyHead,
) -> Tx {
    let (xw, oab) = (d.xw, d.oab);
    let go_reply = &head.go_reply;
    let tidx = m.reg("tidx", u(xw), Reset::To(0), "reply byte being sent");
    let tcrc = m.reg("tcrc", u(8), Reset::To(0), "CRC-8 of the reply so far");
    // 2 + rd_latency clocks after a step: the index, the READ address, the read, the byte.
    let hold_start = u128::from(2 + d.rd_latency);
    let hw = clog2(u64::try_from(hold_start).expect("small") + 1);
    let hold = m.reg(
        "hold",
        u(hw),
        Reset::To(0),
        "clocks until tbyte_q is the byte at tidx_q",
    );
    let snap = m.reg(
        "snap",
        u(56),
        Reset::To(0),
        "status taken while the reply header goes out: flags, last error, error count, cycles; \
         shifted up a byte per payload byte sent",
    );
    let send = m.wire(
        "send",
        state
            .is(st::REPLY)
            .and(io.tx_ready.clone())
            .and(hold.clone().eq(Expr::lit(0, hw))),
        "hand the next reply byte to the transmitter",
    );
    let step = go_reply.clone().or(send.clone());
    m.set_d(
        &hold,
        Expr::mux(
            step.clone(),
            Expr::lit(hold_start, hw),
            hold.clone().sub(Expr::lit(1, hw)),
        ),
        Some(step.clone().or(hold.clone().ne(Expr::lit(0, hw)))),
    );
    m.set_d(
        &tidx,
        Expr::mux(
            go_reply.clone(),
            Expr::lit(0, xw),
            tidx.clone().add(Expr::lit(1, xw)),
        ),
        Some(step),
    );
    // Stage 1: what tidx_q is, and the table entries at it.
    let ti = |n: u128| tidx.clone().eq(Expr::lit(n, xw));
    let mut flag = |name: &str, e: Expr, doc: &str| m.reg_next(name, e, None, Reset::To(0), doc);
    let t_first = flag("t_first", ti(0), "tidx_q is 0 (the sync byte)");
    let t_snap = flag("t_snap", ti(3), "tidx_q is 3 (the last header byte)");
    let t_hdr = flag(
        "t_hdr",
        tidx.clone().cmp(CmpOp::Lt, Expr::lit(4, xw)),
        "tidx_q is a header byte",
    );
    let t_last = flag(
        "t_last",
        tidx.clone().eq(head.last_idx.clone()),
        "tidx_q is the CRC byte",
    );
    let rlen16 = m.wire("rlen16", head.rlen.zext(16), "reply length field");
    let hdr = [
        l8(proto::SYNC_RSP),
        head.rsp.clone(),
        rlen16.slice(15, 8),
        rlen16.slice(7, 0),
    ];
    let hdr_byte = m.reg_next(
        "hdr_byte",
        mux_tree(&tidx, 1, &hdr, 8),
        None,
        Reset::To(0),
        "header byte at tidx_q[1:0]",
    );
    let id_byte = id_table(m, d, &tidx);
    // The status goes out of the snapshot's top byte, which shifts up after each payload byte.
    let status_byte = snap.slice(55, 48);
    // Stage 2: the byte.
    let tbyte = m.reg_next(
        "tbyte",
        pick(
            status_byte,
            vec![
                (t_last.clone(), tcrc.clone()),
                (t_hdr.clone(), hdr_byte),
                (head.rkind.clone().eq(Expr::lit(kind::IDENTIFY, 2)), id_byte),
                (
                    head.rkind.clone().eq(Expr::lit(kind::READ, 2)),
                    io.rd_data_i.clone(),
                ),
            ],
        ),
        None,
        Reset::To(0),
        "reply byte at tidx_q (valid once hold_q is 0)",
    );
    let tcrc_next = crc8_step(m, "tcrc_next", tcrc.clone(), tbyte.clone());
    let reply_done = m.wire(
        "reply_done",
        send.clone().and(t_last.clone()),
        "the CRC byte goes out: back to IDLE",
    );
    m.set_d(
        &tcrc,
        Expr::mux(go_reply.clone(), Expr::lit(0, 8), tcrc_next),
        Some(
            go_reply
                .clone()
                .or(send.clone().and(t_first.not()).and(t_last.not())),
        ),
    );
    let flags = Expr::concat(vec![
        Expr::lit(0, 5),
        io.aerr_i.clone(),
        io.done_i.clone(),
        io.busy_i.clone(),
    ]);
    let snap_load = send.clone().and(t_snap);
    m.set_d(
        &snap,
        Expr::mux(
            snap_load.clone(),
            Expr::concat(vec![
                flags,
                errs.last_err.clone(),
                errs.err_cnt.clone(),
                io.cycles_i.clone(),
            ]),
            Expr::concat(vec![snap.slice(47, 0), l8(0)]),
        ),
        Some(snap_load.or(send.clone().and(t_hdr.clone().not()))),
    );
    // READ: the output address of the payload byte at tidx_q (xw >= oab: a reply holds the
    // whole output buffer).
    let rd_addr = m.reg_next(
        "rd_addr",
        head.rbase.clone().add(tidx.slice(oab - 1, 0)),
        None,
        Reset::To(0),
        "READ: output address of the payload byte at tidx_q",
    );
    Tx {
        send,
        tbyte,
        reply_done,
        rd_addr,
    }
}

/// The IDENTIFY ROM, registered, indexed by the reply index (the payload starts at index 4).
pub(super) fn id_table(m: &mut Module, d: &Dims, tidx: &Expr) -> Expr {
    let id_rom: Vec<Expr> = std::iter::repeat_n(l8(0), 4)
        .chain(d.id.iter().map(|&b| l8(b)))
        .collect();
    let ibits = clog2(id_rom.len() as u64);
    m.reg_next(
        "id_byte",
        mux_tree(tidx, ibits - 1, &id_rom, 8),
        None,
        Reset::To(0),
        "IDENTIFY payload byte at tidx_q",
    )
}
