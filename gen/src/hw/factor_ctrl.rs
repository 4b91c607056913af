//! The controller's pipeline for the factorized dataflow (docs/interface.md, "Factorized
//! pipeline"): the row flags to the lanes' block accumulators (S4), the end of each block
//! segment, and the nine-cycle flush that multiplies the segment's accumulators by its basis
//! and adds them to the channel accumulators, then the drain.
//!
//! A segment is a run of entries of one tile with one basis word; it ends at a tile's last
//! entry, at the end of a pass over the stream, or when the next entry starts a tile or
//! changes the basis word. The stream keeps every segment at least
//! [`FACTOR_FLUSH_CYCLES`] entries long (`core::image`), so a flush always ends before the
//! next one starts.

use super::u;
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::params::{clog2, FACTOR_FLUSH_CYCLES};

/// The controller's extra outputs in the factorized dataflow.
pub struct FactorPorts {
    pub row_en_o: Expr,
    pub seg_end_o: Expr,
    pub flush_o: Expr,
    pub term_o: Expr,
}

/// Width of the flush's term index (0..=8).
pub fn term_bits() -> u32 {
    clog2(u64::from(FACTOR_FLUSH_CYCLES))
}

pub fn ports(m: &mut Module) -> FactorPorts {
    FactorPorts {
        row_en_o: m.output(
            "row_en_o",
            u(1),
            "S4: a valid row reaches the block accumulators",
        ),
        seg_end_o: m.output(
            "seg_end_o",
            u(1),
            "S4: the row ends its block segment (flush the block accumulators after it)",
        ),
        flush_o: m.output(
            "flush_o",
            u(1),
            "F1: a flush term's operands are selected (B[k][j] and acc[k][j])",
        ),
        term_o: m.output(
            "term_o",
            u(term_bits()),
            "F1: the flush term t = 3k + j (0..8)",
        ),
    }
}

/// What the factorized pipeline reads from the issue and decode stages, and the shared outputs
/// it drives.
pub struct Stages<'a> {
    pub issuing: Expr,
    pub v1: Expr,
    pub first1: Expr,
    pub last1: Expr,
    pub end1: Expr,
    /// S1: the entry's basis-select field.
    pub bsel1: Expr,
    /// The basis buffer's data comes two cycles after its address (`extra_stages`).
    pub extra_stages: bool,
    pub b_raddr_o: &'a Expr,
    pub acc_en_o: &'a Expr,
    pub first_o: &'a Expr,
    pub load_o: &'a Expr,
    pub wrap_o: &'a Expr,
}

/// S2, S3, S4 and the flush (F1 operands, F2 product, F3 channel add) → drain load. Returns the
/// valid flags that keep the run busy.
pub fn pipeline(m: &mut Module, ports: &FactorPorts, s: Stages) -> Vec<Expr> {
    let tb = term_bits();
    m.comment("S2: does the entry end its block segment? (the S1 entry is the next one)");
    let v2 = m.reg_next("v2", s.v1.clone(), None, Reset::To(0), "S2 valid");
    let f2 = m.reg_next("f2", s.first1.clone(), None, Reset::To(0), "S2 first");
    let l2 = m.reg_next("l2", s.last1, None, Reset::To(0), "S2 last");
    let e2 = m.reg_next("e2", s.end1, None, Reset::To(0), "S2 end of a pass");
    let bsel2 = m.reg_next("bsel2", s.bsel1.clone(), None, Reset::None, "S2 basis word");
    let seg2 = m.wire(
        "seg_end2",
        v2.clone().and(
            l2.clone()
                .or(e2.clone())
                .or(s.first1)
                .or(s.bsel1.ne(bsel2.clone())),
        ),
        "S2: the entry ends its segment",
    );
    m.comment("S3: the lanes shift the row's activations into terms");
    let v3 = m.reg_next("v3", v2.clone(), None, Reset::To(0), "S3 valid");
    let f3 = m.reg_next("f3", f2, None, Reset::To(0), "S3 first");
    let l3 = m.reg_next("l3", l2, None, Reset::To(0), "S3 last");
    let e3 = m.reg_next("e3", e2, None, Reset::To(0), "S3 end of a pass");
    let seg3 = m.reg_next(
        "seg3",
        seg2.clone(),
        None,
        Reset::To(0),
        "S3 end of a segment",
    );
    // The flush's basis word: its data must arrive for the first flush term (F1, two cycles
    // after S4) and stay until the last, so the address moves at the segment's end at S3 (one
    // cycle of read latency) or at S2 (two, with registered reads): the next segment's end
    // comes at least FACTOR_FLUSH_CYCLES entries later, after this flush's last term.
    let (at, bsel) = if s.extra_stages {
        (seg2, bsel2)
    } else {
        let bsel3 = m.reg_next("bsel3", bsel2, None, Reset::None, "S3 basis word");
        (seg3.clone(), bsel3)
    };
    let fbsel = m.reg_next(
        "fbsel",
        bsel,
        Some(at),
        Reset::To(0),
        "basis word of the segment being flushed",
    );
    m.assign(s.b_raddr_o, fbsel);

    m.comment("S4: the lanes add the row into their block accumulators");
    let v4 = m.reg_next("v4", v3.clone(), None, Reset::To(0), "S4 valid");
    let f4 = m.reg_next("f4", f3, None, Reset::To(0), "S4 first");
    let l4 = m.reg_next("l4", l3, None, Reset::To(0), "S4 last");
    let e4 = m.reg_next("e4", e3, None, Reset::To(0), "S4 end of a pass");
    let seg4 = m.reg_next("seg4", seg3, None, Reset::To(0), "S4 end of a segment");
    m.assign(&ports.row_en_o, v4.clone());
    m.assign(&ports.seg_end_o, seg4.clone());
    // A tile's first entry always starts a segment; the flush of that segment restarts the
    // channel accumulators.
    let sf = m.reg(
        "seg_first",
        u(1),
        Reset::To(0),
        "the segment in progress holds a tile's first entry",
    );
    let has_first = m.wire(
        "has_first",
        sf.clone().or(f4),
        "S4: this segment holds a tile's first entry",
    );
    m.set_d(
        &sf,
        Expr::mux(seg4.clone(), Expr::lit(0, 1), has_first.clone()),
        Some(v4.clone()),
    );

    m.comment("Flush: one term t = 3k + j per cycle (F1 operands, F2 product, F3 add)");
    let last_term = Expr::lit(u128::from(FACTOR_FLUSH_CYCLES - 1), tb);
    let fact = m.reg("fact", u(1), Reset::To(0), "F1: a flush term is selected");
    let ft = m.reg("ft", u(tb), Reset::To(0), "F1: the term");
    let at_last = m.wire("ft_last", ft.clone().eq(last_term), "F1: the ninth term");
    m.set_d(
        &fact,
        seg4.clone().or(fact.clone().and(at_last.clone().not())),
        None,
    );
    m.set_d(
        &ft,
        Expr::mux(
            seg4.clone(),
            Expr::lit(0, tb),
            ft.clone().add(Expr::lit(1, tb)),
        ),
        Some(seg4.clone().or(fact.clone())),
    );
    let flag = |m: &mut Module, name: &str, d: Expr, doc: &str| {
        m.reg_next(name, d, Some(seg4.clone()), Reset::To(0), doc)
    };
    let ffirst = flag(
        m,
        "ffirst",
        has_first,
        "the flush restarts the channel sums",
    );
    let flast = flag(m, "flast", l4, "the flush ends a tile: drain after it");
    let fwrap = flag(m, "fwrap", e4, "the flushed tile ends a pass");
    m.assign(&ports.flush_o, fact.clone());
    m.assign(&ports.term_o, ft.clone());
    let t0 = ft.clone().eq(Expr::lit(0, tb));
    let p2v = m.reg_next("p2v", fact.clone(), None, Reset::To(0), "F2 valid");
    let p2c = m.reg_next(
        "p2c",
        fact.clone().and(t0).and(ffirst),
        None,
        Reset::To(0),
        "F2: the tile's first term",
    );
    let tile_end = fact.clone().and(at_last).and(flast);
    let p2l = m.reg_next(
        "p2l",
        tile_end.clone(),
        None,
        Reset::To(0),
        "F2: the tile's last term",
    );
    let p2w = m.reg_next(
        "p2w",
        tile_end.and(fwrap),
        None,
        Reset::To(0),
        "F2: ... and it ends a pass",
    );
    let p3v = m.reg_next("p3v", p2v.clone(), None, Reset::To(0), "F3 valid");
    let p3c = m.reg_next("p3c", p2c, None, Reset::To(0), "F3: restart");
    let p3l = m.reg_next("p3l", p2l, None, Reset::To(0), "F3: last term of a tile");
    let p3w = m.reg_next("p3w", p2w, None, Reset::To(0), "F3: ... ending a pass");
    let load = m.reg_next("load", p3l, None, Reset::To(0), "drain load");
    let wrap = m.reg_next(
        "wrap",
        p3w,
        None,
        Reset::To(0),
        "the drained tile ends a pass",
    );
    m.assign(s.acc_en_o, p3v.clone());
    m.assign(s.first_o, p3c);
    m.assign(s.load_o, load.clone());
    m.assign(s.wrap_o, wrap);
    vec![s.issuing, s.v1, v2, v3, v4, fact, p2v, p3v, load]
}
