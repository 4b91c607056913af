//! Controller: streams a run's coefficient entries (one per cycle, absent rows were never
//! stored, so they cost no cycles), tracks the pipeline, and reports busy/done/cycles.

use super::factor_ctrl::{self, FactorPorts, Stages};
use super::{config_line, u};
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::image::CoefLayout;
use smartdeal_core::{AccelConfig, MacMul};

pub const NAME: &str = "sd_ctrl";

/// The controller's ports (the basis and weight-shift read addresses only where the
/// configuration has those buffers).
struct Ports {
    /// `AccelConfig::extra_stages`.
    extra_stages: bool,
    /// `mac_mul = "mult18x18d"`: the DSP blocks register the MAC operands once more (S5d).
    dsp_regs: bool,
    start: Expr,
    last_idx: Expr,
    band: Expr,
    rdata: Expr,
    drain_busy: Expr,
    out_busy: Expr,
    raddr_o: Expr,
    act_o: Expr,
    act_valid_o: Expr,
    b_o: Option<Expr>,
    ws_o: Option<Expr>,
    codes_o: Expr,
    acc_en_o: Expr,
    first_o: Expr,
    load_o: Expr,
    wrap_o: Expr,
    busy_o: Expr,
    done_o: Expr,
    cycles_o: Expr,
    /// The factorized dataflow's row and flush controls.
    factor: Option<FactorPorts>,
}

/// The valid flags of every pipeline stage, which keep the run busy while set.
struct Valids {
    issuing: Expr,
    v1: Expr,
    v2: Expr,
    v2b: Expr,
    /// The DSP blocks' operand registers (`mac_mul = "mult18x18d"`).
    v5d: Option<Expr>,
    /// The products' second register and their sum's stage (`extra_stages`).
    v5p: Option<Expr>,
    v5s: Option<Expr>,
    v3: Expr,
    v4: Expr,
    v5: Expr,
    v6: Expr,
    v7: Expr,
}

pub fn module(cfg: &AccelConfig) -> Module {
    let mut m = Module::new(
        NAME,
        "Run controller. START latches the index of the run's last stream entry; the\n\
         controller then reads one entry per cycle (S0, registered at S0r), decodes its row /\n\
         basis-select / first / last fields (S1) and carries valid, first and last flags down\n\
         the pipeline
         to the accumulators (S6) and the drain (S7). busy_o falls once the last output has\n\
         been written; cycles_o counts the cycles of the last run.",
        &config_line(cfg),
    );
    m.clock_reset();
    let io = ports(&mut m, cfg);
    let (issuing, v0r, v1, end1) = issue(&mut m, cfg, &io);
    let (first1, last1) = decode(&mut m, cfg, &io, &v1, &end1);
    // With registered reads the buffers' data comes a cycle later (S1r), and so does everything
    // that meets it: the entry's flags go through one more register.
    let mut extra = Vec::new();
    // The factorized controller compares consecutive entries' basis words.
    let bsel1 = io
        .factor
        .is_some()
        .then(|| io.rdata.field(CoefLayout::of(cfg).bsel_lo, cfg.bsel_bits()));
    let (v1, first1, last1, end1, bsel1) = if cfg.extra_stages {
        let r = |m: &mut Module, name: &str, e: Expr, reset: Reset, doc: &str| {
            m.reg_next(name, e, None, reset, doc)
        };
        // The pipeline lists the flag it is given (S1r's) as its S1 flag, so the S1 flag itself
        // goes in here: without it a run of one entry ends while that entry is in S1.
        extra.push(v1.clone());
        let v = r(&mut m, "v1r", v1, Reset::To(0), "S1r valid");
        (
            v,
            r(&mut m, "f1r", first1, Reset::To(0), "S1r first"),
            r(&mut m, "l1r", last1, Reset::To(0), "S1r last"),
            r(&mut m, "e1r", end1, Reset::To(0), "S1r end of a pass"),
            bsel1.map(|b| r(&mut m, "bsel1r", b, Reset::None, "S1r basis word")),
        )
    } else {
        (v1, first1, last1, end1, bsel1)
    };
    let mut in_flight = match &io.factor {
        None => pipeline(&mut m, &io, issuing, v1, first1, last1, end1).flags(),
        Some(f) => {
            let stages = Stages {
                issuing,
                v1,
                first1,
                last1,
                end1,
                bsel1: bsel1.expect("factorized configs have a basis"),
                extra_stages: cfg.extra_stages,
                b_raddr_o: io.b_o.as_ref().expect("factorized configs have a basis"),
                acc_en_o: &io.acc_en_o,
                first_o: &io.first_o,
                load_o: &io.load_o,
                wrap_o: &io.wrap_o,
            };
            factor_ctrl::pipeline(&mut m, f, stages)
        }
    };
    in_flight.push(v0r);
    in_flight.extend(extra);
    run_state(&mut m, &io, in_flight);
    m
}

fn ports(m: &mut Module, cfg: &AccelConfig) -> Ports {
    let caw = cfg.coef_addr_bits();
    let start = m.input("start_i", u(1), "start a run");
    let last_idx = m.input(
        "last_idx_i",
        u(caw),
        "index of the run's last entry (with start_i)",
    );
    let band = m.input(
        "band_i",
        u(cfg.band_param_bits()),
        "with start_i: the run's {groups - 1, kernel-row mask, base2, base1, base0}",
    );
    let entry = m.input("coef_rdata_i", u(cfg.coef_word_bits()), "S0r: stream entry");
    // The buffer's read data goes straight into a register (S0r): decoding it and adding the
    // activation address in the same cycle as the RAM's clock-to-out misses 42 MHz on the iCE40.
    let rdata = m.reg_next("entry", entry, None, Reset::None, "S1: stream entry");
    let drain_busy = m.input("drain_busy_i", u(1), "the drain is emitting");
    let out_busy = m.input(
        "out_busy_i",
        u(1),
        "the output requantizer has values in flight",
    );
    let raddr_o = m.output("coef_raddr_o", u(caw), "S0: stream read address");
    let act_o = m.output(
        "act_raddr_o",
        u(cfg.act_addr_bits()),
        "S1: activation word (the kernel row's base + the entry's row)",
    );
    let act_valid_o = m.output(
        "act_valid_o",
        u(1),
        "S2: the activation word is inside the image (else the lanes see zeros)",
    );
    let b_o = cfg.has_basis().then(|| {
        let doc = if cfg.is_factorized() {
            "basis word of the block being flushed"
        } else {
            "S1: basis word"
        };
        m.output("b_raddr_o", u(cfg.b_addr_bits()), doc)
    });
    let ws_o = cfg.has_wshift().then(|| {
        m.output(
            "wshift_raddr_o",
            u(cfg.wshift_addr_bits()),
            "S1: weight-shift word (the tile)",
        )
    });
    let codes_o = m.output(
        "codes_o",
        u(cfg.coef_codes_bits()),
        if super::codes_in_lanes(cfg) {
            "S1r: all lanes' Ce rows (each lane registers them for S2)"
        } else {
            "S2: all lanes' Ce rows (dense baseline: int8 weights)"
        },
    );
    let acc_en_o = m.output("acc_en_o", u(1), "S6: accumulate");
    let first_o = m.output("first_o", u(1), "S6: first entry of a tile");
    let load_o = m.output(
        "drain_load_o",
        u(1),
        "S7: the tile's accumulators are final",
    );
    let wrap_o = m.output(
        "drain_wrap_o",
        u(1),
        "S7: with drain_load_o, the tile is the stream's last (the next pixel group's tiles \
         use output parameters from 0 again)",
    );
    let busy_o = m.output("busy_o", u(1), "a run is in progress");
    let done_o = m.output(
        "done_o",
        u(1),
        "the last run has finished (cleared by START)",
    );
    let cycles_o = m.output("cycles_o", u(32), "cycles of the last run");
    let factor = cfg.is_factorized().then(|| factor_ctrl::ports(m));
    Ports {
        extra_stages: cfg.extra_stages,
        dsp_regs: cfg.mac_mul == MacMul::Mult18x18d,
        start,
        last_idx,
        band,
        rdata,
        drain_busy,
        out_busy,
        raddr_o,
        act_o,
        act_valid_o,
        b_o,
        ws_o,
        codes_o,
        acc_en_o,
        first_o,
        load_o,
        wrap_o,
        busy_o,
        done_o,
        cycles_o,
        factor,
    }
}

/// S0: from START to the run's last entry, read one stream entry per cycle; a band run of
/// several pixel groups reads the stream once per group (the pointer wraps to 0 after the last
/// entry while groups are left); the entry read is registered at S0r. Returns `(issuing, v0r,
/// v1, end1)`: entries left to read, the S0r and S1 valid flags, and "the S1 entry ends a pass
/// over the stream".
fn issue(m: &mut Module, cfg: &AccelConfig, io: &Ports) -> (Expr, Expr, Expr, Expr) {
    let caw = cfg.coef_addr_bits();
    let (aw, gw) = (cfg.act_addr_bits(), cfg.out_addr_bits());
    let start = &io.start;
    m.comment("S0: issue");
    let issuing = m.reg("issuing", u(1), Reset::To(0), "entries left to read");
    let ptr = m.reg("ptr", u(caw), Reset::To(0), "next entry");
    let last_q = m.reg_next(
        "last_idx",
        io.last_idx.clone(),
        Some(start.clone()),
        Reset::To(0),
        "run's last entry",
    );
    let groups = m.reg(
        "groups",
        u(gw),
        Reset::To(0),
        "pixel groups left after this one",
    );
    let at_last = m.wire("at_last", ptr.clone().eq(last_q), "reading the last entry");
    let more = m.wire(
        "more",
        groups.clone().ne(Expr::lit(0, gw)),
        "another pass over the stream follows",
    );
    let wrap = m.wire(
        "wrap",
        issuing.clone().and(at_last.clone()).and(more.clone()),
        "the pointer wraps to the next pixel group",
    );
    m.set_d(
        &groups,
        Expr::mux(
            start.clone(),
            io.band.field(3 * aw + 3, gw),
            groups.clone().sub(Expr::lit(1, gw)),
        ),
        Some(start.clone().or(wrap)),
    );
    m.set_d(
        &issuing,
        Expr::mux(
            start.clone(),
            Expr::lit(1, 1),
            issuing.clone().and(at_last.clone().and(more.not()).not()),
        ),
        None,
    );
    m.set_d(
        &ptr,
        Expr::mux(
            start.clone().or(at_last.clone()),
            Expr::lit(0, caw),
            ptr.clone().add(Expr::lit(1, caw)),
        ),
        Some(start.clone().or(issuing.clone())),
    );
    m.assign(&io.raddr_o, ptr);
    let v0r = m.reg_next("v0r", issuing.clone(), None, Reset::To(0), "S0r valid");
    let end0r = m.reg_next(
        "end0r",
        issuing.clone().and(at_last),
        None,
        Reset::To(0),
        "S0r: the entry ends a pass over the stream",
    );
    let v1 = m.reg_next("v1", v0r.clone(), None, Reset::To(0), "S1 valid");
    let end1 = m.reg_next(
        "end1",
        end0r,
        None,
        Reset::To(0),
        "S1: the entry ends a pass over the stream",
    );
    (issuing, v0r, v1, end1)
}

/// S1: the entry's fields address the activation, basis and weight-shift buffers (the tile
/// counter advances on each tile's last entry). Returns `(first1, last1)`, the entry's
/// first/last flags qualified by its valid.
fn decode(m: &mut Module, cfg: &AccelConfig, io: &Ports, v1: &Expr, end1: &Expr) -> (Expr, Expr) {
    let lay = CoefLayout::of(cfg);
    let rdata = &io.rdata;
    let start = &io.start;
    m.comment("S1: decode the entry");
    let first1 = m.wire("first1", v1.clone().and(rdata.bit(lay.first_bit)), "");
    let last1 = m.wire("last1", v1.clone().and(rdata.bit(lay.last_bit)), "");
    band_address(m, cfg, io, &v1.clone().and(end1.clone()));
    // The factorized dataflow reads the basis only to flush a block (`factor_ctrl`).
    if let Some(b_o) = io.b_o.as_ref().filter(|_| io.factor.is_none()) {
        m.assign(b_o, rdata.field(lay.bsel_lo, cfg.bsel_bits()));
    }
    if let Some(ws_o) = &io.ws_o {
        let waw = cfg.wshift_addr_bits();
        let tile = m.reg("tile", u(waw), Reset::To(0), "tile of the S1 entry");
        m.set_d(
            &tile,
            Expr::mux(
                start.clone().or(end1.clone()),
                Expr::lit(0, waw),
                tile.clone().add(Expr::lit(1, waw)),
            ),
            Some(start.clone().or(last1.clone())),
        );
        m.assign(ws_o, tile);
    }
    let mut codes = rdata.field(lay.codes_lo, cfg.coef_codes_bits());
    if cfg.extra_stages {
        codes = m.reg_next("codes1r", codes, None, Reset::None, "S1r codes");
    }
    // Rebuild lanes with the extra stages register the codes themselves, once per weight column.
    if !super::codes_in_lanes(cfg) {
        codes = m.reg_next("codes", codes, None, Reset::None, "S2 codes");
    }
    m.assign(&io.codes_o, codes);
    (first1, last1)
}

/// S1: the activation address is the entry's row plus the base of its kernel row (`kh`), both
/// `act_addr_bits` wide (the sum wraps; the host keeps band addresses inside the buffer); a
/// fully connected run has kh = 0 and base 0. START loads the bases, and each pass over the
/// stream (`next`: the S1 entry ends one) moves them one word on, to the next pixel group. The
/// kernel row's mask bit says whether that input row lies inside the image; it follows the read
/// to S2, where the data arrives.
fn band_address(m: &mut Module, cfg: &AccelConfig, io: &Ports, next: &Expr) {
    let lay = CoefLayout::of(cfg);
    let aw = cfg.act_addr_bits();
    let start = &io.start;
    let bases: Vec<Expr> = (0..3)
        .map(|k| {
            let b = m.reg(
                &format!("base{k}"),
                u(aw),
                Reset::To(0),
                &format!("activation address of kernel row {k}'s words"),
            );
            m.set_d(
                &b,
                Expr::mux(
                    start.clone(),
                    io.band.field(k * aw, aw),
                    b.clone().add(Expr::lit(1, aw)),
                ),
                Some(start.clone().or(next.clone())),
            );
            b
        })
        .collect();
    let mask = m.reg_next(
        "mask",
        io.band.field(3 * aw, 3),
        Some(start.clone()),
        Reset::To(1),
        "kernel rows inside the image",
    );
    let kh = m.wire(
        "kh",
        io.rdata.field(lay.kh_lo, smartdeal_core::params::KH_BITS),
        "S1: kernel row",
    );
    let is = |v: u128| kh.clone().eq(Expr::lit(v, 2));
    let base = Expr::mux(
        is(0),
        bases[0].clone(),
        Expr::mux(is(1), bases[1].clone(), bases[2].clone()),
    );
    let base = m.wire("base", base, "S1: base address of the kernel row");
    let row = io.rdata.field(lay.row_lo, aw);
    m.assign(&io.act_o, base.add(row));
    // kh = 3 never occurs in a packed stream; it reads as row 2.
    let inside = Expr::mux(
        is(0),
        mask.bit(0),
        Expr::mux(is(1), mask.bit(1), mask.bit(2)),
    );
    let inside = if cfg.extra_stages {
        m.reg_next(
            "act_valid1r",
            inside,
            None,
            Reset::None,
            "S1r: inside the image",
        )
    } else {
        inside
    };
    let valid2 = m.reg_next(
        "act_valid",
        inside,
        None,
        Reset::None,
        "S2: the activation word is inside the image",
    );
    m.assign(&io.act_valid_o, valid2);
}

/// S2..S7: valid, first and last flags follow the entry down to the accumulators (S6); a
/// tile's last entry loads the drain (S7).
fn pipeline(
    m: &mut Module,
    io: &Ports,
    issuing: Expr,
    v1: Expr,
    first1: Expr,
    last1: Expr,
    end1: Expr,
) -> Valids {
    let v2 = m.reg_next("v2", v1.clone(), None, Reset::To(0), "S2 valid");
    let f2 = m.reg_next("f2", first1, None, Reset::To(0), "S2 first");
    let l2 = m.reg_next("l2", last1, None, Reset::To(0), "S2 last");
    // S2b: the rebuild's adds (the dense lane's weights wait).
    let v2b = m.reg_next("v2b", v2.clone(), None, Reset::To(0), "S2b valid");
    let f2b = m.reg_next("f2b", f2, None, Reset::To(0), "S2b first");
    let l2b = m.reg_next("l2b", l2, None, Reset::To(0), "S2b last");
    let v3 = m.reg_next("v3", v2b.clone(), None, Reset::To(0), "S3 valid");
    let f3 = m.reg_next("f3", f2b, None, Reset::To(0), "S3 first");
    let l3 = m.reg_next("l3", l2b, None, Reset::To(0), "S3 last");
    let v4 = m.reg_next("v4", v3.clone(), None, Reset::To(0), "S4 valid");
    let f4 = m.reg_next("f4", f3, None, Reset::To(0), "S4 first");
    let l4 = m.reg_next("l4", l3, None, Reset::To(0), "S4 last");
    let e2 = m.reg_next("e2", end1, None, Reset::To(0), "S2 end of a pass");
    let e2b = m.reg_next("e2b", e2, None, Reset::To(0), "S2b end of a pass");
    let e3 = m.reg_next("e3", e2b, None, Reset::To(0), "S3 end of a pass");
    let e4 = m.reg_next("e4", e3, None, Reset::To(0), "S4 end of a pass");
    let v5 = m.reg_next("v5", v4.clone(), None, Reset::To(0), "S5 valid");
    let f5 = m.reg_next("f5", f4, None, Reset::To(0), "S5 first");
    let l5 = m.reg_next("l5", l4, None, Reset::To(0), "S5 last");
    let e5 = m.reg_next("e5", e4, None, Reset::To(0), "S5 end of a pass");
    // With the extra stages the lanes add a row's three products in a stage of their own (S5s)
    // before accumulating them.
    // Before that the products are registered once more (S5p) by the multipliers, and with
    // `mac_mul = "mult18x18d"` the DSP blocks register their operands first (S5d).
    let (v5d, v5x, f5, l5, e5) = if io.dsp_regs {
        let v5d = m.reg_next("v5d", v5.clone(), None, Reset::To(0), "S5d valid");
        (
            Some(v5d.clone()),
            v5d,
            m.reg_next("f5d", f5, None, Reset::To(0), "S5d first"),
            m.reg_next("l5d", l5, None, Reset::To(0), "S5d last"),
            m.reg_next("e5d", e5, None, Reset::To(0), "S5d end of a pass"),
        )
    } else {
        (None, v5.clone(), f5, l5, e5)
    };
    let (v5p, v5s, f5, l5, e5) = if io.extra_stages {
        let v5p = m.reg_next("v5p", v5x, None, Reset::To(0), "S5p valid");
        let f5p = m.reg_next("f5p", f5, None, Reset::To(0), "S5p first");
        let l5p = m.reg_next("l5p", l5, None, Reset::To(0), "S5p last");
        let e5p = m.reg_next("e5p", e5, None, Reset::To(0), "S5p end of a pass");
        (
            Some(v5p.clone()),
            Some(m.reg_next("v5s", v5p, None, Reset::To(0), "S5s valid")),
            m.reg_next("f5s", f5p, None, Reset::To(0), "S5s first"),
            m.reg_next("l5s", l5p, None, Reset::To(0), "S5s last"),
            m.reg_next("e5s", e5p, None, Reset::To(0), "S5s end of a pass"),
        )
    } else {
        (None, None, f5, l5, e5)
    };
    let v6 = m.reg_next(
        "v6",
        v5s.clone().unwrap_or_else(|| v5.clone()),
        None,
        Reset::To(0),
        "S6 valid",
    );
    let f6 = m.reg_next("f6", f5, None, Reset::To(0), "S6 first");
    let l6 = m.reg_next("l6", l5, None, Reset::To(0), "S6 last");
    let e6 = m.reg_next("e6", e5, None, Reset::To(0), "S6 end of a pass");
    let v7 = m.reg_next("v7", l6, None, Reset::To(0), "S7: drain load");
    let e7 = m.reg_next(
        "e7",
        e6,
        None,
        Reset::To(0),
        "S7: the drained tile ends a pass",
    );
    m.assign(&io.wrap_o, e7);
    m.assign(&io.acc_en_o, v6.clone());
    m.assign(&io.first_o, f6);
    m.assign(&io.load_o, v7.clone());
    Valids {
        issuing,
        v1,
        v2,
        v2b,
        v5d,
        v5p,
        v5s,
        v3,
        v4,
        v5,
        v6,
        v7,
    }
}

impl Valids {
    /// The flags in pipeline order.
    fn flags(self) -> Vec<Expr> {
        let mut v = vec![
            self.issuing,
            self.v1,
            self.v2,
            self.v2b,
            self.v3,
            self.v4,
            self.v5,
            self.v6,
            self.v7,
        ];
        v.extend(self.v5d);
        v.extend(self.v5p);
        v.extend(self.v5s);
        v
    }
}

/// busy from START until nothing is left in flight (`valids`: the pipeline's; the drain, the
/// output requantizer), done when a run ends, and the run's cycle count.
fn run_state(m: &mut Module, io: &Ports, valids: Vec<Expr>) {
    let start = &io.start;
    m.comment("Run state");
    let busy = m.reg("busy", u(1), Reset::To(0), "run in progress");
    let in_flight = m.wire(
        "in_flight",
        valids
            .into_iter()
            .chain([io.drain_busy.clone(), io.out_busy.clone()])
            .reduce(Expr::or)
            .expect("the issue flag at least"),
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
        Some(start.clone().or(busy.clone())),
    );
    m.assign(&io.busy_o, busy);
    m.assign(&io.done_o, done);
    m.assign(&io.cycles_o, cycles);
}
