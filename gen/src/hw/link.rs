//! The link protocol engine (docs/protocol.md): parses request frames from the UART receiver,
//! checks them (CRC-8, command, length, arguments), tunnels WRITE batches into the
//! accelerator's command port, and sends the reply frame through the UART transmitter.
//!
//! Frame: `SYNC CMD LEN_HI LEN_LO PAYLOAD[LEN] CRC8(CMD..PAYLOAD)`. A WRITE payload is buffered
//! in a byte RAM and only replayed once its CRC has been checked, so a corrupted frame never
//! reaches the accelerator. Every error ends the frame with a NAK and puts the parser back in
//! IDLE (hunting for the sync byte); a frame that stalls longer than the inter-byte timeout is
//! dropped the same way, so the device never hangs half-way.

use super::{config_line, u};
use crate::board::{identify_payload, proto, BoardLink, LinkSizes};
use crate::ir::{CmpOp, Expr, Module, RedOp, Reset};
use smartdeal_core::params::clog2;
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_link";

/// Parser/engine states (3 bits).
mod st {
    pub const IDLE: u128 = 0;
    pub const CMD: u128 = 1;
    pub const LEN_HI: u128 = 2;
    pub const LEN_LO: u128 = 3;
    pub const PAYLOAD: u128 = 4;
    pub const CHECK: u128 = 5;
    pub const EXEC: u128 = 6;
    pub const REPLY: u128 = 7;
}

/// What the reply payload is made of (2 bits).
mod kind {
    pub const STATUS: u128 = 0;
    pub const IDENTIFY: u128 = 1;
    pub const READ: u128 = 2;
}

/// Priority select: the value of the first true condition, else `default`.
fn pick(default: Expr, cases: Vec<(Expr, Expr)>) -> Expr {
    cases
        .into_iter()
        .rev()
        .fold(default, |acc, (c, v)| Expr::mux(c, v, acc))
}

/// `table[idx]` as a balanced tree of 2:1 muxes on the bits of `idx` (a named net), from bit
/// `bit` down (indices past the table alias some entry: never read). A tree rather than a
/// chain of compares lets synthesis see a plain ROM.
fn mux_tree(idx: &Expr, bit: u32, table: &[Expr], width: u32) -> Expr {
    let half = 1usize << bit;
    match table.len() {
        0 => Expr::lit(0, width),
        1 => table[0].clone(),
        n if n <= half => mux_tree(idx, bit - 1, table, width),
        _ => Expr::mux(
            idx.bit(bit),
            mux_tree(idx, bit.saturating_sub(1), &table[half..], width),
            mux_tree(idx, bit.saturating_sub(1), &table[..half], width),
        ),
    }
}

/// One CRC-8 step (docs/protocol.md) as logic: the CRC is linear in `v = crc ^ byte`, so each
/// output bit is the XOR of the bits of `v` whose single-bit CRC has that bit set.
fn crc8_step(m: &mut Module, name: &str, crc: Expr, byte: Expr) -> Expr {
    let v = m.wire(&format!("{name}_v"), crc.xor(byte), "CRC input: crc ^ byte");
    let bits: Vec<Expr> = (0..8u32)
        .rev()
        .map(|i| {
            let taps: Vec<Expr> = (0..8u32)
                .rev()
                .filter(|&j| proto::crc8_update(0, 1 << j) >> i & 1 == 1)
                .map(|j| v.bit(j))
                .collect();
            Expr::concat(taps).reduce(RedOp::Xor)
        })
        .collect();
    m.wire(name, Expr::concat(bits), "next CRC-8")
}

pub fn module(cfg: &AccelConfig, link: &BoardLink) -> Module {
    let sizes = LinkSizes::of(cfg);
    let ab = sizes.buf_addr_bits();
    let max_payload = sizes.max_payload();
    let id = identify_payload(cfg, link);
    let tmo = link.timeout_clks();
    let tw = clog2(tmo + 1);
    let oab = cfg.out_addr_bits();
    // Payload lengths and buffer pointers fit the buffer's address (max_payload < buf_depth).
    let lw = ab;
    assert!(u64::from(max_payload) < 1 << lw);
    // Reply lengths: at most the output buffer (READ), IDENTIFY or STATUS; `xw` also holds the
    // 4 header bytes.
    let max_rlen = u64::from(cfg.out_depth).max(id.len() as u64).max(7);
    let rw = clog2(max_rlen + 1).min(16);
    let xw = clog2(max_rlen + 5);
    let mut m = Module::new(
        NAME,
        &format!(
            "Link protocol engine, version {} (docs/protocol.md). Requests:\n\
             SYNC 0x{:02X}, CMD, LEN (16 bits, big-endian), PAYLOAD, CRC-8/SMBUS over CMD..PAYLOAD.\n\
             Replies start with 0x{:02X}. WRITE payloads (at most {} commands of 7 bytes) are\n\
             buffered in a {}-byte RAM and tunnelled into the accelerator's command port after\n\
             the CRC check. Inter-byte timeout: {} clocks.",
            proto::VERSION,
            proto::SYNC_REQ,
            proto::SYNC_RSP,
            sizes.max_cmds,
            sizes.buf_depth,
            tmo
        ),
        &format!("{} | {}", link.config_line(), config_line(cfg)),
    );
    m.clock_reset();
    let rxv = m.input("rx_valid_i", u(1), "a byte from the UART receiver");
    let rxd = m.input("rx_data_i", u(8), "the received byte");
    let ferr = m.input("rx_ferr_i", u(1), "the receiver saw a bad stop bit");
    let tx_ready = m.input("tx_ready_i", u(1), "the UART transmitter is idle");
    let busy_i = m.input("busy_i", u(1), "accelerator busy_o");
    let done_i = m.input("done_i", u(1), "accelerator done_o");
    let aerr_i = m.input("err_i", u(1), "accelerator err_o");
    let cycles_i = m.input("cycles_i", u(32), "accelerator cycles_o");
    let rd_data_i = m.input("rd_data_i", u(8), "accelerator rd_data_o");
    let tx_valid_o = m.output("tx_valid_o", u(1), "send tx_data_o");
    let tx_data_o = m.output("tx_data_o", u(8), "byte to send");
    let cmd_valid_o = m.output("cmd_valid_o", u(1), "accelerator command strobe");
    let cmd_op_o = m.output("cmd_op_o", u(3), "accelerator command opcode");
    let cmd_addr_o = m.output("cmd_addr_o", u(16), "accelerator command address");
    let cmd_data_o = m.output("cmd_data_o", u(32), "accelerator command data");
    let rd_addr_o = m.output("rd_addr_o", u(oab), "accelerator output read address");
    let frame_o = m.output("frame_o", u(1), "a frame is being handled (LED)");
    let err_seen_o = m.output(
        "err_seen_o",
        u(1),
        "a link error happened since reset (LED)",
    );

    let state = m.reg("state", u(3), Reset::To(st::IDLE), "parser/engine state");
    let is = |s: u128| state.clone().eq(Expr::lit(s, 3));
    let l8 = |v: u8| Expr::lit(u128::from(v), 8);

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
    let tmo_q = m.reg(
        "tmo",
        u(tw),
        Reset::To(0),
        "clocks since the last byte of a frame",
    );
    let receiving = m.wire(
        "receiving",
        state
            .clone()
            .eq(Expr::lit(st::IDLE, 3))
            .not()
            .and(state.clone().cmp(CmpOp::Lt, Expr::lit(st::EXEC, 3))),
        "inside a request frame",
    );
    let e_sync = m.wire(
        "e_sync",
        is(st::IDLE)
            .and(rxv.clone())
            .and(rxd.clone().eq(l8(proto::SYNC_REQ))),
        "sync byte: a frame starts",
    );
    let e_cmd = m.wire("e_cmd", is(st::CMD).and(rxv.clone()), "command byte");
    let e_lenh = m.wire(
        "e_lenh",
        is(st::LEN_HI).and(rxv.clone()),
        "length, high byte",
    );
    let e_lenl = m.wire(
        "e_lenl",
        is(st::LEN_LO).and(rxv.clone()),
        "length, low byte",
    );
    let len_rx = m.wire(
        "len_rx",
        Expr::concat(vec![lenh.clone(), rxd.clone()]),
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
    let e_pay = m.wire("e_pay", is(st::PAYLOAD).and(rxv.clone()), "payload byte");
    let pay_last = m.wire(
        "pay_last",
        cnt.clone().add(Expr::lit(1, lw)).eq(len.clone()),
        "this payload byte is the last",
    );
    let e_chk = m.wire("e_chk", is(st::CHECK).and(rxv.clone()), "CRC byte");
    let e_ferr = m.wire(
        "e_ferr",
        receiving.clone().and(ferr.clone()),
        "framing error inside a frame",
    );
    let e_ferr_idle = m.wire(
        "e_ferr_idle",
        is(st::IDLE).and(ferr.clone()),
        "framing error between frames: counted, not answered",
    );
    let e_tmo = m.wire(
        "e_tmo",
        receiving
            .clone()
            .and(tmo_q.clone().eq(Expr::lit(u128::from(tmo), tw)))
            .and(rxv.clone().not())
            .and(ferr.clone().not()),
        "the frame stalled for the inter-byte timeout",
    );
    m.set_d(
        &tmo_q,
        Expr::mux(
            receiving.clone().and(rxv.clone().or(ferr).not()),
            tmo_q.clone().add(Expr::lit(1, tw)),
            Expr::lit(0, tw),
        ),
        None,
    );

    m.comment("Request checks (on the CRC byte)");
    let crc_next = crc8_step(&mut m, "crc_next", crc.clone(), rxd.clone());
    let is_cmd = |c: u8| cmd.clone().eq(l8(c));
    let c_id = m.wire("c_identify", is_cmd(proto::cmd::IDENTIFY), "");
    let c_st = m.wire("c_status", is_cmd(proto::cmd::STATUS), "");
    let c_wr = m.wire("c_write", is_cmd(proto::cmd::WRITE), "");
    let c_run = m.wire("c_run", is_cmd(proto::cmd::RUN), "");
    let c_rd = m.wire("c_read", is_cmd(proto::cmd::READ), "");
    let len_is = |n: u128| len.clone().eq(Expr::lit(n, lw));
    let len_ok = m.wire(
        "len_ok",
        pick(
            Expr::lit(0, 1),
            vec![
                (c_id.clone().or(c_st.clone()), len_is(0)),
                (c_run.clone(), len_is(3)),
                (c_rd.clone(), len_is(4)),
                (
                    c_wr.clone(),
                    len_is(0).not().and(k7.clone().eq(Expr::lit(0, 3))),
                ),
            ],
        ),
        "payload length right for the command",
    );
    // READ payload: address (16), count (16); the range must lie in the output buffer.
    let rd_base = m.wire("rd_base", pl.slice(31, 16), "READ: first address");
    let rd_count = m.wire("rd_count", pl.slice(15, 0), "READ: bytes");
    let rd_end = m.wire(
        "rd_end",
        rd_base.clone().zext(17).add(rd_count.clone().zext(17)), // 16 + 16 -> 17 bits
        "READ: one past the last address",
    );
    let rd_ok = m.wire(
        "rd_ok",
        rd_end.cmp(CmpOp::Le, Expr::lit(u128::from(cfg.out_depth), 17)),
        "READ range inside the output buffer",
    );
    let known = c_id
        .clone()
        .or(c_st.clone())
        .or(c_wr.clone())
        .or(c_run.clone())
        .or(c_rd.clone());
    let chk_code = m.wire(
        "chk_code",
        pick(
            l8(proto::err::NONE),
            vec![
                (rxd.clone().ne(crc.clone()), l8(proto::err::BAD_CRC)),
                (known.not(), l8(proto::err::UNKNOWN_CMD)),
                (len_ok.not(), l8(proto::err::BAD_LEN)),
                (c_rd.clone().and(rd_ok.not()), l8(proto::err::BAD_ARG)),
                (
                    c_wr.clone().or(c_run.clone()).and(busy_i.clone()),
                    l8(proto::err::BUSY),
                ),
            ],
        ),
        "error found by the checks, 0 if none",
    );
    let chk_ok = m.wire(
        "chk_ok",
        e_chk.clone().and(chk_code.clone().eq(l8(0))),
        "a valid request: execute it",
    );
    let nak = m.wire(
        "nak",
        e_ferr
            .clone()
            .or(e_tmo.clone())
            .or(e_lenl.clone().and(too_long.clone()))
            .or(e_chk.clone().and(chk_code.clone().ne(l8(0)))),
        "the frame failed: answer with a NAK",
    );
    let nak_code = m.wire(
        "nak_code",
        pick(
            chk_code,
            vec![
                (e_ferr.clone(), l8(proto::err::FRAMING)),
                (e_tmo.clone(), l8(proto::err::TIMEOUT)),
                (e_lenl.clone(), l8(proto::err::BAD_LEN)),
            ],
        ),
        "error code of the NAK",
    );
    let any_err = m.wire(
        "any_err",
        nak.clone().or(e_ferr_idle.clone()),
        "an error to record",
    );
    let last_err = m.reg_next(
        "last_err",
        Expr::mux(e_ferr_idle, l8(proto::err::FRAMING), nak_code),
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

    m.comment("WRITE replay: buffer -> 7-byte commands -> accelerator command port");
    let buf_rdata = m.mem(
        "buf",
        8,
        sizes.buf_depth,
        e_pay.clone(),
        cnt.clone(),
        rxd.clone(),
        cnt.clone(),
    );
    let fetch = m.wire(
        "fetch",
        is(st::EXEC).and(cnt.clone().ne(len.clone())),
        "EXEC: read the next payload byte",
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
        k7.clone().eq(Expr::lit(6, 3)),
        "7th byte of a command",
    );
    let shift_in = m.wire(
        "shift_in",
        e_pay.clone().or(rv.clone()),
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
        is(st::EXEC)
            .and(fetch.clone().not())
            .and(rv.clone().not())
            .and(fire.clone().not()),
        "every command of the batch has been issued",
    );
    m.set_d(
        &fire,
        rv.clone()
            .and(k7_wrap.clone())
            .or(chk_ok.clone().and(c_run.clone())),
        None,
    );
    let shift_byte = m.wire(
        "shift_byte",
        Expr::mux(rv.clone(), buf_rdata, rxd.clone()),
        "payload byte entering pl",
    );
    // RUN becomes the tunnelled command {START, last entry, data = flags}.
    let run_cmd = Expr::concat(vec![
        Expr::lit(u128::from(super::host_if::op::START), 8),
        pl.slice(23, 8),
        Expr::lit(0, 24),
        pl.slice(7, 0),
    ]);
    m.set_d(
        &pl,
        Expr::mux(
            chk_ok.clone().and(c_run.clone()),
            run_cmd,
            Expr::concat(vec![pl.slice(47, 0), shift_byte]),
        ),
        Some(shift_in.clone().or(chk_ok.clone().and(c_run.clone()))),
    );
    m.set_d(
        &k7,
        Expr::mux(
            e_sync.clone(),
            Expr::lit(0, 3),
            Expr::mux(k7_wrap, Expr::lit(0, 3), k7.clone().add(Expr::lit(1, 3))),
        ),
        Some(e_sync.clone().or(shift_in)),
    );
    m.set_d(
        &cnt,
        pick(
            cnt.clone(),
            vec![
                (e_sync.clone(), Expr::lit(0, lw)),
                (chk_ok.clone().and(c_wr.clone()), Expr::lit(0, lw)),
                (
                    e_pay.clone().or(fetch.clone()),
                    cnt.clone().add(Expr::lit(1, lw)),
                ),
            ],
        ),
        None,
    );
    m.set_d(
        &crc,
        Expr::mux(e_sync.clone(), Expr::lit(0, 8), crc_next),
        Some(
            e_sync
                .clone()
                .or(e_cmd.clone())
                .or(e_lenh.clone())
                .or(e_lenl.clone())
                .or(e_pay.clone()),
        ),
    );
    m.set_d(&cmd, rxd.clone(), Some(e_cmd.clone()));
    m.set_d(&lenh, rxd.clone(), Some(e_lenh.clone()));
    // 16 -> lw bits: a longer length is rejected (too_long) before len is used.
    m.set_d(&len, len_rx.slice(lw - 1, 0), Some(e_lenl.clone()));
    m.unused(
        pl.slice(55, 51),
        "opcode bits 7..3 of a tunnelled command are ignored",
    );

    m.comment("Reply");
    let go_reply = m.wire(
        "go_reply",
        nak.clone()
            .or(chk_ok.clone().and(c_wr.clone().not()))
            .or(exec_done.clone()),
        "start sending a reply",
    );
    let rsp = m.reg_next(
        "rsp",
        Expr::mux(
            nak.clone(),
            l8(proto::RSP_NAK),
            Expr::concat(vec![Expr::lit(1, 1), cmd.slice(6, 0)]),
        ),
        Some(go_reply.clone()),
        Reset::To(0),
        "reply code: request | 0x80, or 0xFF (NAK)",
    );
    let ok_kind = pick(
        Expr::lit(kind::STATUS, 2),
        vec![
            (c_id.clone(), Expr::lit(kind::IDENTIFY, 2)),
            (c_rd.clone(), Expr::lit(kind::READ, 2)),
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
            (c_id, Expr::lit(id.len() as u128, rw)),
            // 16 -> rw bits: rd_ok bounds the count by out_depth.
            (c_rd.clone(), rd_count.slice(rw - 1, 0)),
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
        rd_base.slice(oab - 1, 0), // 16 -> oab bits: rd_ok bounds the address
        Some(chk_ok.clone().and(c_rd)),
        Reset::To(0),
        "READ: first output address",
    );
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
        is(st::REPLY).and(tx_ready.clone()),
        "hand the next reply byte to the transmitter",
    );
    let last_idx = m.wire(
        "last_idx",
        rlen.zext(xw).add(Expr::lit(4, xw)), // rw -> xw bits: up to max_rlen + 4
        "index of the reply's CRC byte",
    );
    let pidx = m.wire(
        "pidx",
        tidx.clone().sub(Expr::lit(4, xw)),
        "payload byte index",
    );
    let rlen16 = m.wire("rlen16", rlen.zext(16), "reply length field");
    let ti = |n: u128| tidx.clone().eq(Expr::lit(n, xw));
    let status: Vec<Expr> = (0..proto::STATUS_LEN as u32)
        .map(|k| snap.slice(55 - 8 * k, 48 - 8 * k))
        .collect();
    let status_byte = mux_tree(&pidx, 2, &status, 8);
    let iw = clog2(id.len() as u64);
    let id_rom: Vec<Expr> = id.iter().map(|&b| l8(b)).collect();
    let id_byte = mux_tree(&pidx, iw - 1, &id_rom, 8);
    let pay_byte = m.wire(
        "pay_byte",
        pick(
            status_byte,
            vec![
                (rkind.clone().eq(Expr::lit(kind::IDENTIFY, 2)), id_byte),
                (rkind.eq(Expr::lit(kind::READ, 2)), rd_data_i),
            ],
        ),
        "reply payload byte at pidx",
    );
    let tbyte = m.wire(
        "tbyte",
        pick(
            pay_byte,
            vec![
                (ti(0), l8(proto::SYNC_RSP)),
                (ti(1), rsp),
                (ti(2), rlen16.slice(15, 8)),
                (ti(3), rlen16.slice(7, 0)),
                (tidx.clone().eq(last_idx.clone()), tcrc.clone()),
            ],
        ),
        "reply byte at tidx",
    );
    let tcrc_next = crc8_step(&mut m, "tcrc_next", tcrc.clone(), tbyte.clone());
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
    let flags = Expr::concat(vec![Expr::lit(0, 5), aerr_i, done_i, busy_i]);
    m.set_d(
        &snap,
        Expr::concat(vec![flags, last_err.clone(), err_cnt, cycles_i]),
        Some(send.clone().and(ti(3))),
    );
    let rd_addr = m.wire(
        "rd_addr",
        rbase.add(pidx.slice(oab - 1, 0)),
        "READ: output address of the payload byte",
    );
    let used = oab.max(iw).max(3);
    if xw > used {
        m.unused(
            pidx.slice(xw - 1, used),
            "payload indices stay below out_depth",
        );
    }

    m.comment("State");
    let l3 = |s: u128| Expr::lit(s, 3);
    m.set_d(
        &state,
        pick(
            state.clone(),
            vec![
                (nak, l3(st::REPLY)),
                (e_sync, l3(st::CMD)),
                (e_cmd, l3(st::LEN_HI)),
                (e_lenh, l3(st::LEN_LO)),
                (e_lenl, Expr::mux(len_zero, l3(st::CHECK), l3(st::PAYLOAD))),
                (e_pay.and(pay_last), l3(st::CHECK)),
                (chk_ok.clone().and(c_wr), l3(st::EXEC)),
                (chk_ok, l3(st::REPLY)),
                (exec_done, l3(st::REPLY)),
                (reply_done, l3(st::IDLE)),
            ],
        ),
        None,
    );
    m.assign(&tx_valid_o, send);
    m.assign(&tx_data_o, tbyte);
    m.assign(&cmd_valid_o, fire);
    m.assign(&cmd_op_o, pl.slice(50, 48));
    m.assign(&cmd_addr_o, pl.slice(47, 32));
    m.assign(&cmd_data_o, pl.slice(31, 0));
    m.assign(&rd_addr_o, rd_addr);
    m.assign(&frame_o, is(st::IDLE).not());
    m.assign(&err_seen_o, last_err.ne(l8(0)));
    m
}
