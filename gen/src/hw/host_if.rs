//! Host interface: a 32-bit command port. Buffer words wider than 32 bits are assembled in a
//! staging shift register (PUSH, most significant chunk first) and written with one WR_*
//! command; START launches a run. Commands other than NOP while busy are dropped and set err_o.

use super::{config_line, u};
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_host_if";

/// Command opcodes (cmd_op_i), documented in docs/interface.md; defined with the protocol
/// vocabulary, which the host shares.
pub use smartdeal_core::protocol::op;

pub fn module(cfg: &AccelConfig) -> Module {
    let sb = cfg.staging_bits();
    let caw = cfg.coef_addr_bits();
    let mut m = Module::new(
        NAME,
        "Host command decoder. Opcodes: 0 NOP, 1 PUSH (staging = {staging, data}),\n\
         2 WR_ACT, 3 WR_COEF, 4 WR_B, 5 WR_WSHIFT, 6 WR_OPARAM (buffer[addr] = low bits of\n\
         staging), 7 START (addr = index of the last stream entry, data[0] = ReLU,\n\
         data[1] = convolution band run with the band parameters in the staging register,\n\
         data[2] = stride 2).",
        &config_line(cfg),
    );
    m.clock_reset();
    let valid = m.input("cmd_valid_i", u(1), "command strobe");
    let opc = m.input("cmd_op_i", u(3), "opcode");
    let addr = m.input("cmd_addr_i", u(16), "buffer address / last entry index");
    let data = m.input("cmd_data_i", u(32), "PUSH data / START flags");
    let busy = m.input("busy_i", u(1), "a run is in progress");
    let staging_o = m.output("staging_o", u(sb), "assembled buffer word");
    let we_o: Vec<(u32, Expr)> = [
        (op::WR_ACT, "we_act_o"),
        (op::WR_COEF, "we_coef_o"),
        (op::WR_B, "we_b_o"),
        (op::WR_WSHIFT, "we_wshift_o"),
        (op::WR_OPARAM, "we_oparam_o"),
    ]
    .into_iter()
    .map(|(code, name)| (code, m.output(name, u(1), "buffer write enable")))
    .collect();
    let waddr_o = m.output("waddr_o", u(16), "buffer write address");
    let start_o = m.output("start_o", u(1), "start a run");
    let last_o = m.output("last_idx_o", u(caw), "index of the run's last entry");
    let relu_o = m.output("relu_o", u(1), "ReLU for the run");
    let pb = cfg.band_param_bits();
    let band_o = m.output(
        "band_o",
        u(pb),
        "with start_o: the run's {groups - 1, kernel-row mask, base2, base1, base0} (a fully \
         connected run: 1 group, mask 1, bases 0)",
    );
    let step_o = m.output(
        "step_o",
        u(2),
        "activations between slots in a word: 3 fully connected, the stride in a band run",
    );
    let err_o = m.output(
        "err_o",
        u(1),
        "a command arrived while busy (cleared by START)",
    );

    let accept = m.wire(
        "accept",
        valid.clone().and(busy.clone().not()),
        "command taken",
    );
    let is = |c: u32| opc.clone().eq(Expr::lit(u128::from(c), 3));
    let push = m.wire("push", accept.clone().and(is(op::PUSH)), "");
    let start = m.wire("start", accept.clone().and(is(op::START)), "");
    for (code, port) in &we_o {
        let e = accept.clone().and(is(*code));
        m.assign(port, e);
    }
    let staging = m.reg("staging", u(sb), Reset::To(0), "staging shift register");
    let next = if sb == 32 {
        data.clone()
    } else {
        Expr::concat(vec![staging.slice(sb - 33, 0), data.clone()])
    };
    m.set_d(&staging, next, Some(push));
    let relu = m.reg_next(
        "relu",
        data.bit(0),
        Some(start.clone()),
        Reset::To(0),
        "ReLU flag",
    );
    // A fully connected run reads activation row `row` for kernel row 0 only: base 0, mask 1.
    // A band run takes its bases and mask from the staging register (PUSHed before START).
    let conv = data.bit(1);
    let fc_band = Expr::lit(1u128 << (3 * cfg.act_addr_bits()), pb);
    let band = m.wire(
        "band",
        Expr::mux(conv.clone(), staging.slice(pb - 1, 0), fc_band),
        "band parameters of a run started now",
    );
    let step_d = Expr::mux(
        conv,
        Expr::mux(data.bit(2), Expr::lit(2, 2), Expr::lit(1, 2)),
        Expr::lit(3, 2),
    );
    let step = m.reg_next(
        "step",
        step_d,
        Some(start.clone()),
        Reset::To(3),
        "slot step of the run",
    );
    let rejected = valid.and(busy).and(is(op::NOP).not());
    let err = m.reg("err", u(1), Reset::To(0), "sticky error");
    m.set_d(
        &err,
        Expr::mux(start.clone(), Expr::lit(0, 1), err.clone().or(rejected)),
        None,
    );
    m.assign(&staging_o, staging);
    m.assign(&waddr_o, addr.clone());
    m.assign(&start_o, start);
    m.assign(&last_o, addr.field(0, caw));
    m.assign(&relu_o, relu);
    m.assign(&band_o, band);
    m.assign(&step_o, step);
    m.assign(&err_o, err);
    m
}
