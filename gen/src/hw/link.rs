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
use crate::ir::{Expr, Module, RedOp, Reset};
use smartdeal_core::params::clog2;
use smartdeal_core::protocol::{self as proto, identify_payload, BoardLink, LinkSizes};
use smartdeal_core::AccelConfig;

// The engine's parts, in the order they are built (and emitted); the nets they share are
// the structs below.
mod parse;
mod replay;
mod reply;

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

/// Sizes and widths the engine is built for.
struct Dims {
    sizes: LinkSizes,
    /// The IDENTIFY payload.
    id: Vec<u8>,
    /// The inter-byte timeout in clocks, and the width of its counter.
    tmo: u64,
    tw: u32,
    /// Output buffer address bits.
    oab: u32,
    /// Payload lengths and buffer pointers.
    lw: u32,
    /// Reply lengths.
    rw: u32,
    /// Reply byte indices: a reply length plus the 4 header bytes.
    xw: u32,
}

impl Dims {
    fn of(cfg: &AccelConfig, link: &BoardLink) -> Dims {
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
        Dims {
            sizes,
            id,
            tmo,
            tw,
            oab,
            lw,
            rw,
            xw,
        }
    }
}

/// The engine's ports.
struct Ports {
    rxv: Expr,
    rxd: Expr,
    ferr: Expr,
    tx_ready: Expr,
    busy_i: Expr,
    done_i: Expr,
    aerr_i: Expr,
    cycles_i: Expr,
    rd_data_i: Expr,
    tx_valid_o: Expr,
    tx_data_o: Expr,
    cmd_valid_o: Expr,
    cmd_op_o: Expr,
    cmd_addr_o: Expr,
    cmd_data_o: Expr,
    rd_addr_o: Expr,
    frame_o: Expr,
    err_seen_o: Expr,
}

/// The parser/engine state register (3 bits, [`st`]).
struct State(Expr);

impl State {
    /// The engine is in state `s`.
    fn is(&self, s: u128) -> Expr {
        self.0.clone().eq(Expr::lit(s, 3))
    }
}

/// An 8-bit constant (a byte of the protocol).
fn l8(v: u8) -> Expr {
    Expr::lit(u128::from(v), 8)
}

/// The request parser's registers.
struct Frame {
    cmd: Expr,
    lenh: Expr,
    len: Expr,
    cnt: Expr,
    crc: Expr,
    k7: Expr,
    pl: Expr,
    tmo: Expr,
}

/// What the received byte is, by parser state, and the length checks made on the length's
/// low byte.
struct Events {
    e_sync: Expr,
    e_cmd: Expr,
    e_lenh: Expr,
    e_lenl: Expr,
    len_rx: Expr,
    too_long: Expr,
    len_zero: Expr,
    e_pay: Expr,
    pay_last: Expr,
    e_chk: Expr,
    e_ferr: Expr,
    e_ferr_idle: Expr,
    e_tmo: Expr,
}

/// The request's command byte, decoded.
struct Cmds {
    id: Expr,
    st: Expr,
    wr: Expr,
    run: Expr,
    rd: Expr,
}

/// The outcome of the checks on the CRC byte (or of an earlier failure).
struct Checks {
    crc_next: Expr,
    rd_base: Expr,
    rd_count: Expr,
    chk_ok: Expr,
    nak: Expr,
    nak_code: Expr,
}

/// The error record reported by STATUS.
struct ErrLog {
    last_err: Expr,
    err_cnt: Expr,
}

/// WRITE replay: the buffer read-out and the command issue.
struct Replay {
    fetch: Expr,
    k7_wrap: Expr,
    shift_in: Expr,
    fire: Expr,
    exec_done: Expr,
    shift_byte: Expr,
}

/// What the reply is, latched when it starts.
struct ReplyHead {
    go_reply: Expr,
    rsp: Expr,
    rkind: Expr,
    rlen: Expr,
    rbase: Expr,
}

/// The reply transmitter's outputs.
struct Tx {
    send: Expr,
    tbyte: Expr,
    reply_done: Expr,
    rd_addr: Expr,
}

pub fn module(cfg: &AccelConfig, link: &BoardLink) -> Module {
    let d = Dims::of(cfg, link);
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
            d.sizes.max_cmds,
            d.sizes.buf_depth,
            d.tmo
        ),
        &format!("{} | {}", link.config_line(), config_line(cfg)),
    );
    m.clock_reset();
    let io = ports(&mut m, d.oab);
    let state = State(m.reg("state", u(3), Reset::To(st::IDLE), "parser/engine state"));

    // The nets are emitted in the order these calls declare them; a register's next value
    // (`set_d`) may be given anywhere after its declaration.
    let fr = parse::frame_registers(&mut m, &d);
    let ev = parse::frame_events(&mut m, &d, &io, &state, &fr);
    let (c, chk) = parse::request_checks(&mut m, cfg, &d, &io, &fr, &ev);
    parse::latch_header(&mut m, &d, &io, &fr, &ev, chk.crc_next.clone());
    let errs = parse::error_log(&mut m, &ev, &chk);
    let rp = replay::write_replay(&mut m, &d, &io, &state, &fr, &ev, &c, &chk);
    replay::assemble_commands(&mut m, &d, &fr, &ev, &c, &chk, &rp);
    let head = reply::reply_head(&mut m, &d, &fr, &c, &chk, &rp);
    let tx = reply::reply_transmitter(&mut m, &d, &io, &state, &errs, &head);
    next_state(&mut m, &state, &ev, &c, &chk, &rp, &tx);

    m.assign(&io.tx_valid_o, tx.send);
    m.assign(&io.tx_data_o, tx.tbyte);
    m.assign(&io.cmd_valid_o, rp.fire);
    m.assign(&io.cmd_op_o, fr.pl.slice(50, 48));
    m.assign(&io.cmd_addr_o, fr.pl.slice(47, 32));
    m.assign(&io.cmd_data_o, fr.pl.slice(31, 0));
    m.assign(&io.rd_addr_o, tx.rd_addr);
    m.assign(&io.frame_o, state.is(st::IDLE).not());
    m.assign(&io.err_seen_o, errs.last_err.ne(l8(0)));
    m
}

fn ports(m: &mut Module, oab: u32) -> Ports {
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
    Ports {
        rxv,
        rxd,
        ferr,
        tx_ready,
        busy_i,
        done_i,
        aerr_i,
        cycles_i,
        rd_data_i,
        tx_valid_o,
        tx_data_o,
        cmd_valid_o,
        cmd_op_o,
        cmd_addr_o,
        cmd_data_o,
        rd_addr_o,
        frame_o,
        err_seen_o,
    }
}

/// The parser/engine state machine: IDLE, the header fields, PAYLOAD, CHECK, then EXEC
/// (WRITE) and REPLY; any failure goes straight to REPLY with a NAK.
fn next_state(
    m: &mut Module,
    state: &State,
    ev: &Events,
    c: &Cmds,
    chk: &Checks,
    rp: &Replay,
    tx: &Tx,
) {
    m.comment("State");
    let l3 = |s: u128| Expr::lit(s, 3);
    m.set_d(
        &state.0,
        pick(
            state.0.clone(),
            vec![
                (chk.nak.clone(), l3(st::REPLY)),
                (ev.e_sync.clone(), l3(st::CMD)),
                (ev.e_cmd.clone(), l3(st::LEN_HI)),
                (ev.e_lenh.clone(), l3(st::LEN_LO)),
                (
                    ev.e_lenl.clone(),
                    Expr::mux(ev.len_zero.clone(), l3(st::CHECK), l3(st::PAYLOAD)),
                ),
                (ev.e_pay.clone().and(ev.pay_last.clone()), l3(st::CHECK)),
                (chk.chk_ok.clone().and(c.wr.clone()), l3(st::EXEC)),
                (chk.chk_ok.clone(), l3(st::REPLY)),
                (rp.exec_done.clone(), l3(st::REPLY)),
                (tx.reply_done.clone(), l3(st::IDLE)),
            ],
        ),
        None,
    );
}
