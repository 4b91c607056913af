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
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::protocol::{self as proto, BoardLink};
use smartdeal_core::AccelConfig;

// The engine's parts, in the order they are built (and emitted); the nets they share are
// the structs below.
mod nets;
mod parse;
mod replay;
mod reply;

use nets::{st, Checks, Dims, Events, Ports, Replay, State, Tx};

pub const NAME: &str = "sd_link";

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
    let state = State(m.reg(
        "state",
        u(st::N),
        Reset::To(1 << st::IDLE),
        "parser/engine state, one-hot (bit i: state i)",
    ));

    // The nets are emitted in the order these calls declare them; a register's next value
    // (`set_d`) may be given anywhere after its declaration.
    let fr = parse::frame_registers(&mut m, &d);
    let by = parse::byte_stage(&mut m, &d, &io, &fr);
    let ev = parse::frame_events(&mut m, &d, &state, &fr, &by);
    let (c, chk) = parse::request_checks(&mut m, cfg, &d, &io, &state, &fr, &by, &ev);
    parse::latch_header(&mut m, &d, &fr, &by, &ev, chk.crc_next.clone());
    let errs = parse::error_log(&mut m, &state, &ev, &chk);
    let rp = replay::write_replay(&mut m, &d, &state, &fr, &by, &ev, &chk);
    replay::assemble_commands(&mut m, &d, &fr, &ev, &chk, &rp);
    let head = reply::reply_head(&mut m, &d, &state, &fr, &c, &chk);
    let tx = reply::reply_transmitter(&mut m, &d, &io, &state, &errs, &head);
    next_state(&mut m, &state, &ev, &chk, &rp, &tx);

    m.assign(&io.tx_valid_o, tx.send);
    m.assign(&io.tx_data_o, tx.tbyte);
    m.assign(&io.cmd_valid_o, rp.fire);
    m.assign(&io.cmd_op_o, fr.pl.slice(50, 48));
    m.assign(&io.cmd_addr_o, fr.pl.slice(47, 32));
    m.assign(&io.cmd_data_o, fr.pl.slice(31, 0));
    m.assign(&io.rd_addr_o, tx.rd_addr);
    m.assign(&io.frame_o, state.is(st::IDLE).not());
    m.assign(&io.err_seen_o, errs.err_seen);
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

/// The parser/engine state machine, one-hot: IDLE, the header fields, PAYLOAD, CHECK (the
/// CRC byte), VERIFY (the checks decide), then EXEC (WRITE), HEAD and REPLY; any failure goes
/// through FAIL (its code latched) to HEAD with a NAK. Each state's next bit is "entered" or "stayed": a receiving state is
/// left by any byte, framing error or timeout.
fn next_state(m: &mut Module, state: &State, ev: &Events, chk: &Checks, rp: &Replay, tx: &Tx) {
    m.comment("State");
    let is = |s: u32| state.is(s);
    let stay_rx = |s: u32| is(s).and(ev.ev_rx.clone().not());
    let mut next = vec![Expr::lit(0, 1); st::N as usize];
    next[st::IDLE as usize] = is(st::IDLE)
        .and(ev.e_sync.clone().not())
        .or(tx.reply_done.clone());
    next[st::CMD as usize] = ev.e_sync.clone().or(stay_rx(st::CMD));
    next[st::LEN_HI as usize] = ev.e_cmd.clone().or(stay_rx(st::LEN_HI));
    next[st::LEN_LO as usize] = ev.e_lenh.clone().or(stay_rx(st::LEN_LO));
    next[st::PAYLOAD as usize] = ev
        .e_lenl
        .clone()
        .and(ev.too_long.clone().not())
        .and(ev.len_zero.clone().not())
        .or(ev.e_pay.clone().and(ev.pay_last.clone().not()))
        .or(stay_rx(st::PAYLOAD));
    // A zero length is never too long.
    next[st::CHECK as usize] = ev
        .e_lenl
        .clone()
        .and(ev.len_zero.clone())
        .or(ev.e_pay.clone().and(ev.pay_last.clone()))
        .or(stay_rx(st::CHECK));
    next[st::VERIFY as usize] = ev.e_chk.clone();
    next[st::EXEC as usize] = chk
        .exec_start
        .clone()
        .or(is(st::EXEC).and(rp.exec_done.clone().not()));
    next[st::FAIL as usize] = chk.fail.clone();
    next[st::HEAD as usize] = chk.to_head.clone();
    next[st::REPLY as usize] = is(st::HEAD).or(is(st::REPLY).and(tx.reply_done.clone().not()));
    let rx_states = [st::CMD, st::LEN_HI, st::LEN_LO, st::PAYLOAD, st::CHECK];
    m.set_d(
        &ev.receiving,
        rx_states
            .iter()
            .map(|&s| next[s as usize].clone())
            .reduce(Expr::or)
            .expect("five receiving states"),
        None,
    );
    next.reverse(); // concat is most significant first
    m.set_d(&state.0, Expr::concat(next), None);
}
