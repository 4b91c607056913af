//! Controller: streams a run's coefficient entries (one per cycle, absent rows were never
//! stored, so they cost no cycles), tracks the pipeline, and reports busy/done/cycles.

use super::{config_line, u};
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::image::CoefLayout;
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_ctrl";

pub fn module(cfg: &AccelConfig) -> Module {
    let caw = cfg.coef_addr_bits();
    let lay = CoefLayout::of(cfg);
    let cb = cfg.coef_codes_bits();
    let mut m = Module::new(
        NAME,
        "Run controller. START latches the index of the run's last stream entry; the\n\
         controller then reads one entry per cycle (S0), decodes its row / basis-select /\n\
         first / last fields (S1) and carries valid, first and last flags down the pipeline\n\
         to the accumulators (S4) and the drain (S5). busy_o falls once the last output has\n\
         been written; cycles_o counts the cycles of the last run.",
        &config_line(cfg),
    );
    m.clock_reset();
    let start = m.input("start_i", u(1), "start a run");
    let last_idx = m.input(
        "last_idx_i",
        u(caw),
        "index of the run's last entry (with start_i)",
    );
    let rdata = m.input("coef_rdata_i", u(cfg.coef_word_bits()), "S1: stream entry");
    let drain_busy = m.input("drain_busy_i", u(1), "the drain is emitting");
    let out_busy = m.input(
        "out_busy_i",
        u(1),
        "the output requantizer has values in flight",
    );
    let raddr_o = m.output("coef_raddr_o", u(caw), "S0: stream read address");
    let act_o = m.output("act_raddr_o", u(cfg.act_addr_bits()), "S1: activation row");
    let b_o = cfg
        .has_basis()
        .then(|| m.output("b_raddr_o", u(cfg.b_addr_bits()), "S1: basis word"));
    let ws_o = cfg.has_wshift().then(|| {
        m.output(
            "wshift_raddr_o",
            u(cfg.wshift_addr_bits()),
            "S1: weight-shift word (the tile)",
        )
    });
    let codes_o = m.output(
        "codes_o",
        u(cb),
        "S2: all lanes' Ce rows (dense baseline: int8 weights)",
    );
    let acc_en_o = m.output("acc_en_o", u(1), "S4: accumulate");
    let first_o = m.output("first_o", u(1), "S4: first entry of a tile");
    let load_o = m.output(
        "drain_load_o",
        u(1),
        "S5: the tile's accumulators are final",
    );
    let busy_o = m.output("busy_o", u(1), "a run is in progress");
    let done_o = m.output(
        "done_o",
        u(1),
        "the last run has finished (cleared by START)",
    );
    let cycles_o = m.output("cycles_o", u(32), "cycles of the last run");

    m.comment("S0: issue");
    let issuing = m.reg("issuing", u(1), Reset::To(0), "entries left to read");
    let ptr = m.reg("ptr", u(caw), Reset::To(0), "next entry");
    let last_q = m.reg_next(
        "last_idx",
        last_idx,
        Some(start.clone()),
        Reset::To(0),
        "run's last entry",
    );
    let at_last = m.wire("at_last", ptr.clone().eq(last_q), "reading the last entry");
    m.set_d(
        &issuing,
        Expr::mux(
            start.clone(),
            Expr::lit(1, 1),
            issuing.clone().and(at_last.not()),
        ),
        None,
    );
    m.set_d(
        &ptr,
        Expr::mux(
            start.clone(),
            Expr::lit(0, caw),
            ptr.clone().add(Expr::lit(1, caw)),
        ),
        Some(start.clone().or(issuing.clone())),
    );
    m.assign(&raddr_o, ptr);
    let v1 = m.reg_next("v1", issuing.clone(), None, Reset::To(0), "S1 valid");

    m.comment("S1: decode the entry");
    let first1 = m.wire("first1", v1.clone().and(rdata.bit(lay.first_bit)), "");
    let last1 = m.wire("last1", v1.clone().and(rdata.bit(lay.last_bit)), "");
    m.assign(&act_o, rdata.field(lay.row_lo, cfg.act_addr_bits()));
    if let Some(b_o) = b_o {
        m.assign(&b_o, rdata.field(lay.bsel_lo, cfg.bsel_bits()));
    }
    if let Some(ws_o) = ws_o {
        let waw = cfg.wshift_addr_bits();
        let tile = m.reg("tile", u(waw), Reset::To(0), "tile of the S1 entry");
        m.set_d(
            &tile,
            Expr::mux(
                start.clone(),
                Expr::lit(0, waw),
                tile.clone().add(Expr::lit(1, waw)),
            ),
            Some(start.clone().or(last1.clone())),
        );
        m.assign(&ws_o, tile);
    }
    let codes = m.reg_next(
        "codes",
        rdata.field(lay.codes_lo, cb),
        None,
        Reset::None,
        "S2 codes",
    );
    m.assign(&codes_o, codes);
    let v2 = m.reg_next("v2", v1.clone(), None, Reset::To(0), "S2 valid");
    let f2 = m.reg_next("f2", first1, None, Reset::To(0), "S2 first");
    let l2 = m.reg_next("l2", last1, None, Reset::To(0), "S2 last");
    let v3 = m.reg_next("v3", v2.clone(), None, Reset::To(0), "S3 valid");
    let f3 = m.reg_next("f3", f2, None, Reset::To(0), "S3 first");
    let l3 = m.reg_next("l3", l2, None, Reset::To(0), "S3 last");
    let v4 = m.reg_next("v4", v3.clone(), None, Reset::To(0), "S4 valid");
    let f4 = m.reg_next("f4", f3, None, Reset::To(0), "S4 first");
    let l4 = m.reg_next("l4", l3, None, Reset::To(0), "S4 last");
    let v5 = m.reg_next("v5", l4, None, Reset::To(0), "S5: drain load");
    m.assign(&acc_en_o, v4.clone());
    m.assign(&first_o, f4);
    m.assign(&load_o, v5.clone());

    m.comment("Run state");
    let busy = m.reg("busy", u(1), Reset::To(0), "run in progress");
    let in_flight = m.wire(
        "in_flight",
        issuing
            .or(v1)
            .or(v2)
            .or(v3)
            .or(v4)
            .or(v5)
            .or(drain_busy)
            .or(out_busy),
        "anything left to do",
    );
    m.set_d(
        &busy,
        Expr::mux(
            start.clone(),
            Expr::lit(1, 1),
            busy.clone().and(in_flight.clone()),
        ),
        None,
    );
    let finish = m.wire(
        "finish",
        busy.clone().and(in_flight.not()),
        "the run ends this cycle",
    );
    let done = m.reg("done", u(1), Reset::To(0), "last run finished");
    m.set_d(
        &done,
        Expr::mux(start.clone(), Expr::lit(0, 1), done.clone().or(finish)),
        None,
    );
    let cycles = m.reg("cycles", u(32), Reset::To(0), "cycle counter");
    m.set_d(
        &cycles,
        Expr::mux(
            start.clone(),
            Expr::lit(0, 32),
            cycles.clone().add(Expr::lit(1, 32)),
        ),
        Some(start.or(busy.clone())),
    );
    m.assign(&busy_o, busy);
    m.assign(&done_o, done);
    m.assign(&cycles_o, cycles);
    m
}
