//! The nets the protocol engine's parts share (registers, decoded events, checks), its state
//! and reply-kind codes, and the small building blocks (priority select, mux tree, CRC-8
//! step). Their own module so that the parts (`parse`, `replay`, `reply`) and the engine that
//! wires them (`super`) import from here, not from each other.

use crate::ir::{Expr, Module, RedOp};
use smartdeal_core::params::clog2;
use smartdeal_core::protocol::{self as proto, identify_payload, BoardLink, LinkSizes};
use smartdeal_core::AccelConfig;

/// Parser/engine states, one-hot (one flop each: every decision reads its state as one bit).
pub(super) mod st {
    pub const IDLE: u32 = 0;
    pub const CMD: u32 = 1;
    pub const LEN_HI: u32 = 2;
    pub const LEN_LO: u32 = 3;
    pub const PAYLOAD: u32 = 4;
    /// Waiting for the CRC byte.
    pub const CHECK: u32 = 5;
    /// One cycle after the CRC byte: the checks' registered outcome decides.
    pub const VERIFY: u32 = 6;
    pub const EXEC: u32 = 7;
    /// One cycle after a failure (its code is latched): a NAK follows.
    pub const FAIL: u32 = 8;
    /// One cycle: the reply's code, kind and length are latched.
    pub const HEAD: u32 = 9;
    pub const REPLY: u32 = 10;
    /// Number of states (= state register bits).
    pub const N: u32 = 11;
}

/// What the reply payload is made of (2 bits).
pub(super) mod kind {
    pub const STATUS: u128 = 0;
    pub const IDENTIFY: u128 = 1;
    pub const READ: u128 = 2;
}

/// Priority select: the value of the first true condition, else `default`.
pub(super) fn pick(default: Expr, cases: Vec<(Expr, Expr)>) -> Expr {
    cases
        .into_iter()
        .rev()
        .fold(default, |acc, (c, v)| Expr::mux(c, v, acc))
}

/// `table[idx]` as a balanced tree of 2:1 muxes on the bits of `idx` (a named net), from bit
/// `bit` down (indices past the table alias some entry: never read). A tree rather than a
/// chain of compares lets synthesis see a plain ROM.
pub(super) fn mux_tree(idx: &Expr, bit: u32, table: &[Expr], width: u32) -> Expr {
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
pub(super) fn crc8_step(m: &mut Module, name: &str, crc: Expr, byte: Expr) -> Expr {
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
pub(super) struct Dims {
    pub(super) sizes: LinkSizes,
    /// The IDENTIFY payload.
    pub(super) id: Vec<u8>,
    /// The inter-byte timeout in clocks, and the width of its counter.
    pub(super) tmo: u64,
    pub(super) tw: u32,
    /// Output buffer address bits.
    pub(super) oab: u32,
    /// Payload lengths and buffer pointers.
    pub(super) lw: u32,
    /// Reply lengths.
    pub(super) rw: u32,
    /// Reply byte indices: a reply length plus the 4 header bytes.
    pub(super) xw: u32,
    /// Clocks from the READ address register to the output buffer's data: 1, or 2 with the
    /// accelerator's `extra_stages` (its output buffer's read data registered once more).
    pub(super) rd_latency: u32,
}

impl Dims {
    pub(super) fn of(cfg: &AccelConfig, link: &BoardLink) -> Dims {
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
            rd_latency: 1 + u32::from(cfg.extra_stages),
        }
    }
}

/// The engine's ports.
pub(super) struct Ports {
    pub(super) rxv: Expr,
    pub(super) rxd: Expr,
    pub(super) ferr: Expr,
    pub(super) tx_ready: Expr,
    pub(super) busy_i: Expr,
    pub(super) done_i: Expr,
    pub(super) aerr_i: Expr,
    pub(super) cycles_i: Expr,
    pub(super) rd_data_i: Expr,
    pub(super) tx_valid_o: Expr,
    pub(super) tx_data_o: Expr,
    pub(super) cmd_valid_o: Expr,
    pub(super) cmd_op_o: Expr,
    pub(super) cmd_addr_o: Expr,
    pub(super) cmd_data_o: Expr,
    pub(super) rd_addr_o: Expr,
    pub(super) frame_o: Expr,
    pub(super) err_seen_o: Expr,
}

/// The parser/engine state register ([`st::N`] bits, one-hot, [`st`]).
pub(super) struct State(pub(super) Expr);

impl State {
    /// The engine is in state `s`.
    pub(super) fn is(&self, s: u32) -> Expr {
        self.0.bit(s)
    }
}

/// An 8-bit constant (a byte of the protocol).
pub(super) fn l8(v: u8) -> Expr {
    Expr::lit(u128::from(v), 8)
}

/// The received byte, registered one cycle after the UART receiver with the flags computed
/// from it (the receiver holds its byte for at least a bit time, so the compares get their own
/// cycle and the engine's decisions read flops).
pub(super) struct Byte {
    pub(super) v: Expr,
    pub(super) d: Expr,
    pub(super) ferr: Expr,
    pub(super) sync: Expr,
    /// With `d` as the length's low byte: over the maximum, and 0.
    pub(super) len_long: Expr,
    pub(super) len_zero: Expr,
    pub(super) crc_eq: Expr,
}

/// The request parser's registers.
pub(super) struct Frame {
    pub(super) cmd: Expr,
    pub(super) lenh: Expr,
    pub(super) len: Expr,
    pub(super) cnt: Expr,
    pub(super) crc: Expr,
    pub(super) k7: Expr,
    pub(super) pl: Expr,
}

/// What the received byte is, by parser state, the length checks made on the length's low
/// byte, framing errors and the inter-byte timeout.
pub(super) struct Events {
    pub(super) e_sync: Expr,
    pub(super) e_cmd: Expr,
    pub(super) e_lenh: Expr,
    pub(super) e_lenl: Expr,
    pub(super) too_long: Expr,
    pub(super) len_zero: Expr,
    pub(super) e_pay: Expr,
    pub(super) pay_last: Expr,
    pub(super) e_chk: Expr,
    pub(super) e_ferr: Expr,
    pub(super) e_ferr_idle: Expr,
    pub(super) e_tmo: Expr,
    /// Anything that ends a receiving state: a byte, a framing error, the timeout.
    pub(super) ev_rx: Expr,
    /// The "inside a frame" flop (CMD .. CHECK); its next value is set by the state machine.
    pub(super) receiving: Expr,
}

/// The request's command byte, decoded.
pub(super) struct Cmds {
    pub(super) id: Expr,
    pub(super) st: Expr,
    pub(super) wr: Expr,
    pub(super) run: Expr,
    pub(super) rd: Expr,
}

/// The outcome of the checks on the CRC byte, decided in VERIFY.
pub(super) struct Checks {
    pub(super) crc_next: Expr,
    pub(super) rd_base: Expr,
    pub(super) rd_count: Expr,
    /// READ: index of the reply's CRC byte (count + 4).
    pub(super) rd_last: Expr,
    /// VERIFY and every check passed for a WRITE: replay it; for a RUN: issue START.
    pub(super) exec_start: Expr,
    pub(super) run_start: Expr,
    /// The frame failed (any state): FAIL is next.
    pub(super) fail: Expr,
    /// The reply starts (HEAD is next).
    pub(super) to_head: Expr,
    /// Registered in `to_head`: the reply is a NAK, and its error code.
    pub(super) nak: Expr,
    pub(super) nak_code: Expr,
}

/// The error record reported by STATUS.
pub(super) struct ErrLog {
    pub(super) last_err: Expr,
    pub(super) err_cnt: Expr,
    pub(super) err_seen: Expr,
}

/// WRITE replay: the buffer read-out and the command issue.
pub(super) struct Replay {
    pub(super) fetch: Expr,
    pub(super) k7_wrap: Expr,
    pub(super) shift_in: Expr,
    pub(super) fire: Expr,
    pub(super) exec_done: Expr,
    pub(super) shift_byte: Expr,
}

/// What the reply is, latched in HEAD.
pub(super) struct ReplyHead {
    pub(super) go_reply: Expr,
    pub(super) rsp: Expr,
    pub(super) rkind: Expr,
    pub(super) rlen: Expr,
    pub(super) rbase: Expr,
    pub(super) last_idx: Expr,
}

/// The reply transmitter's outputs.
pub(super) struct Tx {
    pub(super) send: Expr,
    pub(super) tbyte: Expr,
    pub(super) reply_done: Expr,
    pub(super) rd_addr: Expr,
}

/// `e` cut or zero-extended to `w` bits.
pub(super) fn fit(e: &Expr, w: u32) -> Expr {
    if e.width() >= w {
        e.slice(w - 1, 0)
    } else {
        e.zext(w)
    }
}
