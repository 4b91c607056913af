//! Drain: captures all lanes' final accumulators of a tile and presents them to the output
//! requantizer one per cycle (a shift register, not a wide variable-index mux: toolchain.md
//! found the latter on the critical path).

use super::{config_line, u};
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::params::clog2;
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_drain";

pub fn module(cfg: &AccelConfig) -> Module {
    // One accumulator per lane and slot: `n` values per tile, lane-major (slot p of lane l is
    // value l·slots + p, written to output address base + l·slots + p; its output parameters
    // are those of the lane's channel).
    let n = cfg.lanes * cfg.slots;
    let ab = cfg.acc_bits;
    let oaw = cfg.out_addr_bits();
    let cw = clog2(u64::from(n) + 1);
    let mut m = Module::new(
        NAME,
        "Output drain. On load_i (the tile's last entry has been accumulated) it copies the\n\
         lanes' accumulators (all slots) and then emits them one per cycle, lane-major,\n\
         slot-minor, with output-buffer address base + lane*slots + slot, reading the lane's\n\
         output parameters from the oparam buffer (address tile*lanes + lane). The stream\n\
         rule (each tile has at least lanes*slots entries) guarantees that the next load\n\
         never arrives while a drain is in progress.",
        &config_line(cfg),
    );
    m.clock_reset();
    let start = m.input(
        "start_i",
        u(1),
        "a run starts: output addresses restart at 0",
    );
    let load = m.input("load_i", u(1), "capture acc_i");
    let wrap = m.input(
        "wrap_i",
        u(1),
        "with load_i: the tile ends a pass over the stream (the next tile is the next pixel \
         group's first: its output parameters start at 0 again)",
    );
    let acc = m.input(
        "acc_i",
        u(n * ab),
        "lane l's slot p accumulator at [(l*slots + p)*acc_bits +: acc_bits]",
    );
    let raddr_o = m.output("oparam_raddr_o", u(oaw), "oparam buffer read address");
    let valid_o = m.output(
        "valid_o",
        u(1),
        "acc_o/addr_o valid (aligned with the oparam read data)",
    );
    let addr_o = m.output("addr_o", u(oaw), "output-buffer address");
    let acc_o = m.output("acc_o", u(ab), "accumulator");
    let busy_o = m.output("busy_o", u(1), "drain in progress");

    let cnt = m.reg("cnt", u(cw), Reset::To(0), "accumulators left to emit");
    let addr = m.reg(
        "addr",
        u(oaw),
        Reset::To(0),
        "address of the next emitted value",
    );
    let base = m.reg(
        "base",
        u(oaw),
        Reset::To(0),
        "address of the next tile's lane 0",
    );
    let sh = m.reg(
        "acc_sr",
        u(n * ab),
        Reset::None,
        "captured accumulators, lane 0 lowest",
    );
    let active = m.wire(
        "active",
        cnt.clone().ne(Expr::lit(0, cw)),
        "emitting this cycle",
    );
    let lanes_a = Expr::lit(u128::from(n) % (1u128 << oaw), oaw);
    m.set_d(
        &cnt,
        Expr::mux(
            load.clone(),
            Expr::lit(u128::from(n), cw),
            cnt.clone().sub(Expr::lit(1, cw)),
        ),
        Some(load.clone().or(active.clone())),
    );
    m.set_d(
        &addr,
        Expr::mux(
            load.clone(),
            base.clone(),
            addr.clone().add(Expr::lit(1, oaw)),
        ),
        Some(load.clone().or(active.clone())),
    );
    m.set_d(
        &base,
        Expr::mux(start.clone(), Expr::lit(0, oaw), base.clone().add(lanes_a)),
        Some(load.clone().or(start.clone())),
    );
    let raddr = oparam_address(&mut m, cfg, &start, &load, &wrap, &active);
    let shifted = if n == 1 {
        sh.clone()
    } else {
        Expr::concat(vec![Expr::lit(0, ab), sh.slice(n * ab - 1, ab)])
    };
    m.set_d(&sh, Expr::mux(load, acc, shifted), None);
    let v = m.reg_next(
        "v",
        active.clone(),
        None,
        Reset::To(0),
        "emitted value valid",
    );
    let a = m.reg_next("a", addr.clone(), None, Reset::None, "emitted address");
    let x = m.reg_next(
        "x",
        sh.field(0, ab),
        None,
        Reset::None,
        "emitted accumulator",
    );
    m.assign(&raddr_o, raddr);
    m.assign(&valid_o, v.clone());
    m.assign(&addr_o, a);
    m.assign(&acc_o, x);
    m.assign(&busy_o, active.or(v));
    m
}

/// The output parameters' address: the lane's channel, `tile · lanes + lane` of the tile's
/// place in the stream, which restarts at every pass over the stream (a band run computes one
/// pixel group per pass); with several slots it advances once per `slots` emitted values.
fn oparam_address(
    m: &mut Module,
    cfg: &AccelConfig,
    start: &Expr,
    load: &Expr,
    wrap: &Expr,
    active: &Expr,
) -> Expr {
    let oaw = cfg.out_addr_bits();
    let lane_end = if cfg.slots == 1 {
        active.clone()
    } else {
        let sw = clog2(u64::from(cfg.slots));
        let last_slot = Expr::lit(u128::from(cfg.slots - 1), sw);
        let slot = m.reg(
            "slot",
            u(sw),
            Reset::To(0),
            "slot of the next emitted value",
        );
        let slot_end = m.wire(
            "slot_end",
            slot.clone().eq(last_slot),
            "the lane's last slot",
        );
        m.set_d(
            &slot,
            Expr::mux(
                load.clone().or(slot_end.clone()),
                Expr::lit(0, sw),
                slot.clone().add(Expr::lit(1, sw)),
            ),
            Some(load.clone().or(active.clone())),
        );
        active.clone().and(slot_end)
    };
    let obase = m.reg(
        "obase",
        u(oaw),
        Reset::To(0),
        "oparam address of the next tile's lane 0",
    );
    let lanes_a = Expr::lit(u128::from(cfg.lanes) % (1u128 << oaw), oaw);
    m.set_d(
        &obase,
        Expr::mux(
            start.clone().or(wrap.clone()),
            Expr::lit(0, oaw),
            obase.clone().add(lanes_a),
        ),
        Some(load.clone().or(start.clone())),
    );
    let oaddr = m.reg(
        "oaddr",
        u(oaw),
        Reset::To(0),
        "oparam address of the next emitted value",
    );
    m.set_d(
        &oaddr,
        Expr::mux(load.clone(), obase, oaddr.clone().add(Expr::lit(1, oaw))),
        Some(load.clone().or(lane_end)),
    );
    oaddr
}
