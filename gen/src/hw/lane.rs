//! One lane: rebuild (S2 shifts, S2b adds) → weight requant (S3 shift, S4 round and saturate)
//! → 3 multiplies per slot (S5) → accumulate (S6).

use super::{codes_in_lanes, rebuild};
use super::{config_line, signed_net, u};
use crate::ir::{Expr, Module, Reset, Ty};
use smartdeal_core::{AccelConfig, WeightRequant};

pub const NAME: &str = "sd_lane";

/// Width of one product `x · w`.
pub fn product_bits(cfg: &AccelConfig) -> u32 {
    cfg.act_bits + cfg.mac_weight_bits()
}

/// The dense baseline's lane: the stream brings three int8 weights, registered for S3 so the
/// pipeline timing equals the SmartDeal lane's (the controller is shared), then 3 multiplies and
/// the same accumulator.
pub fn dense_module(cfg: &AccelConfig, mac: Option<&Module>) -> Module {
    assert!(cfg.is_dense(), "dense_module takes a dense config");
    let mut m = Module::new(
        NAME,
        "One output channel of the dense int8 baseline: registers the row's three int8 weights\n\
         (stage S2, in place of the rebuild engine; S2b, S3 and S4 pass them on), multiplies them by\n\
         each slot's three activations (S5), and accumulates (S6; first_i starts a new tile).",
        &config_line(cfg),
    );
    m.clock_reset();
    let wi = m.input(
        "w_i",
        u(24),
        "S2: this lane's int8 weights w[3r+j] at [j*8 +: 8]",
    );
    let (x, acc_en, first, acc_o) = slot_ports(&mut m, cfg);
    // S2b: the weights wait a cycle (the SmartDeal lane's rebuild adds).
    let w_b = m.reg_next("wb", wi, None, Reset::None, "S2b: the row's weights");
    let w_q = m.reg_next("w", w_b, None, Reset::None, "S3: the row's weights");
    m.comment("S3: the weights wait a cycle (the SmartDeal lane's weight requantizer)");
    let w_d = m.reg_next("wd", w_q, None, Reset::None, "S4: the row's weights");
    let weights: Vec<Expr> = (0..3)
        .map(|j| signed_net(&mut m, &format!("w{j}"), w_d.field(j * 8, 8), "int8 weight"))
        .collect();
    // act_bits × 8 → product_bits, as in the SmartDeal lane.
    slots(&mut m, cfg, &x, &weights, mac, &acc_en, &first, &acc_o);
    m
}

/// The activation, control and accumulator ports every lane has: `slots` activation triples
/// in, `slots` accumulators out.
fn slot_ports(m: &mut Module, cfg: &AccelConfig) -> (Expr, Expr, Expr, Expr) {
    let ab = cfg.act_bits;
    let x = m.input(
        "x_i",
        u(3 * ab * cfg.slots),
        "S2b: slot p's activations x[3r+j] at [(3p+j)*act_bits +: act_bits]",
    );
    let acc_en = m.input(
        "acc_en_i",
        u(1),
        "S6: a valid entry reaches the accumulator",
    );
    let first = m.input("first_i", u(1), "S6: first entry of an output tile");
    let acc_o = m.output(
        "acc_o",
        u(cfg.acc_bits * cfg.slots),
        "slot p's accumulator (signed) at [p*acc_bits +: acc_bits]",
    );
    (x, acc_en, first, acc_o)
}

/// A net name of slot `p`: the plain name with one slot, `s<p>_<name>` with several.
fn slot_name(cfg: &AccelConfig, p: u32, name: &str) -> String {
    if cfg.slots == 1 {
        name.to_string()
    } else {
        format!("s{p}_{name}")
    }
}

/// S5 and S6 of every slot: the row's three MAC weights times the slot's three activations,
/// and the slot's accumulator. The weights are shared: one rebuild serves `slots` pixels or
/// tokens.
#[allow(clippy::too_many_arguments)]
fn slots(
    m: &mut Module,
    cfg: &AccelConfig,
    x: &Expr,
    weights: &[Expr],
    mac: Option<&Module>,
    acc_en: &Expr,
    first: &Expr,
    acc_o: &Expr,
) {
    let pb = product_bits(cfg);
    let ab = cfg.act_bits;
    // S5: the multipliers' operands registered (the weight requantizer's two halves and the
    // multiplier each get a cycle; on the iCE40 and ECP5 these are the DSP blocks' input
    // registers). The activations arrive at S2b (the top's S3 register, one stage ahead of the
    // weights since the rebuild's adds took a cycle) and wait three cycles.
    let x3 = m.reg_next(
        "x3",
        x.clone(),
        None,
        Reset::None,
        "S3: the slots' activations",
    );
    let x4 = m.reg_next(
        "x4",
        x3.clone(),
        None,
        Reset::None,
        "S4: the slots' activations",
    );
    let x = m.reg_next(
        "x5",
        x4.clone(),
        None,
        Reset::None,
        "S5: the slots' activations",
    );
    // One copy per lane: merged, one register would drive every lane's multipliers across the
    // chip (the ECP5's worst path at 72 MHz; a merged x3 drove all 16 lanes' x4 with 12.6 ns of
    // routing).
    m.keep_apart(&x3);
    m.keep_apart(&x4);
    m.keep_apart(&x);
    // With the extra stages each slot registers its own copy of the MAC weights, kept apart:
    // one register driving all slots' multipliers spreads over 3 · slots DSP blocks (9.1 ns of
    // routing on the ECP5 with 6 slots). Not with `mac_mul = "mult18x18d"`: the blocks' input
    // registers (S5d) are the copies, so the lane's one S5 register per weight only routes to
    // them and can sit by the requantizer's rounding and saturation that feed it (copies made
    // there put 8.6 ns of routing behind that logic on the ECP5 with 4 slots).
    let copies = if cfg.extra_stages && mac.is_none() {
        cfg.slots
    } else {
        1
    };
    let weights: Vec<Vec<Expr>> = (0..copies)
        .map(|c| {
            weights
                .iter()
                .enumerate()
                .map(|(j, w)| {
                    let name = if copies == 1 {
                        format!("mw{j}")
                    } else {
                        slot_name(cfg, c, &format!("mw{j}"))
                    };
                    let q = m.reg_next(&name, w.clone(), None, Reset::None, "S5: MAC weight");
                    if copies > 1 {
                        m.keep_apart(&q);
                    }
                    q.as_signed()
                })
                .collect()
        })
        .collect();
    let mut accs = Vec::new();
    for p in 0..cfg.slots {
        let mut prods = Vec::new();
        let slot_weights = &weights[if copies == 1 { 0 } else { p as usize }];
        for (j, mw) in slot_weights.iter().enumerate() {
            let j = j as u32;
            let xj = signed_net(
                m,
                &slot_name(cfg, p, &format!("x{j}")),
                x.field((3 * p + j) * ab, ab),
                "",
            );
            let prod = if let Some(mac) = mac {
                // The DSP block registers the operands (S5d) and the product (S5p) itself.
                let q = m.out_wire(
                    &slot_name(cfg, p, &format!("p{j}")),
                    Ty::u(pb),
                    "S5p: product (the DSP block's output register)",
                );
                m.instance(
                    mac,
                    &format!("u_{}", slot_name(cfg, p, &format!("mul{j}"))),
                    vec![
                        ("clk_i", Expr::net("clk_i", u(1))),
                        ("a_i", xj),
                        ("b_i", mw.clone()),
                        ("p_o", q.clone()),
                    ],
                );
                q
            } else {
                // act_bits × mac_weight_bits → product_bits: both operands sign-extended to
                // the product width so the truncated product is the exact signed product.
                let prod = xj.sext(pb).mul(mw.sext(pb));
                m.reg_next(
                    &slot_name(cfg, p, &format!("p{j}")),
                    prod,
                    None,
                    Reset::None,
                    if cfg.extra_stages {
                        "S5p: product"
                    } else {
                        "S6: product"
                    },
                )
            };
            // With the extra stages the product is registered once more (S5p) before it is
            // added: its only load is then that register, so it sits by the multiplier (the
            // ECP5's MULT18X18D has 3.9 ns inside and the adds were placed 4.5 ns away).
            prods.push(if cfg.extra_stages {
                m.reg_next(
                    &slot_name(cfg, p, &format!("pr{j}")),
                    prod,
                    None,
                    Reset::None,
                    "S5s: product, registered again",
                )
            } else {
                prod
            });
        }
        accs.push(accumulate(m, cfg, p, &prods, acc_en.clone(), first.clone()));
    }
    accs.reverse(); // slot 0 least significant
    m.assign(acc_o, Expr::concat(accs));
}

/// S6, shared by both lanes: `acc = first ? sum : acc + sum` of slot `p`'s three products;
/// returns the accumulator.
fn accumulate(
    m: &mut Module,
    cfg: &AccelConfig,
    p: u32,
    prods: &[Expr],
    en: Expr,
    first: Expr,
) -> Expr {
    let acc = cfg.acc_bits;
    m.comment(&format!(
        "S6: accumulate{}",
        if cfg.slots == 1 {
            String::new()
        } else {
            format!(" (slot {p})")
        }
    ));
    // product_bits → product_bits + 2: three products' sum fits (|p| ≤ 2^(pb-1) each); the adds
    // are no wider than that, and only the accumulator's add is acc_bits wide (validated ≥ pb + 2).
    let sb = prods[0].width() + 2;
    let sum = prods
        .iter()
        .map(|p| p.as_signed().sext(sb))
        .reduce(Expr::add)
        .expect("three products");
    let sum = m.wire(
        &slot_name(cfg, p, "sum"),
        sum,
        "sum of the row's three products",
    );
    // With the extra stages the products' sum gets its own cycle (S5s): two adds and the
    // accumulator's third in one cycle are the ECP5's worst path at 86 MHz.
    let sum = if cfg.extra_stages {
        m.reg_next(
            &slot_name(cfg, p, "sum"),
            sum,
            None,
            Reset::None,
            "S6: sum of the row's three products",
        )
    } else {
        sum
    };
    let acc_q = m.reg(
        &slot_name(cfg, p, "acc"),
        Ty::u(acc),
        Reset::To(0),
        "accumulator",
    );
    // product_bits + 2 → acc_bits, sign-extended.
    let sum = sum.as_signed().sext(acc);
    let next = Expr::mux(first, sum.clone(), acc_q.clone().add(sum));
    m.set_d(&acc_q, next, Some(en));
    acc_q
}

pub fn module(
    cfg: &AccelConfig,
    terms: &Module,
    add: &Module,
    wrequant: Option<&Module>,
    mac: Option<&Module>,
) -> Module {
    let bb = cfg.basis_bits;
    let rb = cfg.rebuild_bits();
    let acc = cfg.acc_bits;
    let pb = product_bits(cfg);
    let mwb = cfg.mac_weight_bits();
    assert!(
        acc >= pb + 2,
        "validated configs have acc_bits ≥ product + 2"
    );
    let mut m = Module::new(
        NAME,
        "One output channel: rebuilds the three weights of the current Ce row (S2 shifts, S2b\n\
         adds),\n\
         requantizes them (S3 shift, S4 round and saturate), multiplies them by each slot's\n\
         three activations (S5), and accumulates (S6; first_i starts a new output tile).",
        &config_line(cfg),
    );
    m.clock_reset();
    let b = m.input("b_i", u(9 * bb), "S2: basis of this lane's block");
    let ce = m.input(
        "ce_i",
        u(3 * cfg.coef_elem_bits()),
        if codes_in_lanes(cfg) {
            "S1r: this lane's Ce row"
        } else {
            "S2: this lane's Ce row"
        },
    );
    let wsh = match cfg.weight_requant {
        WeightRequant::Int8 => Some(m.input("wshift_i", u(cfg.wshift_bits()), "S2: weight shift")),
        WeightRequant::Exact => None,
    };
    let (x, acc_en, first, acc_o) = slot_ports(&mut m, cfg);

    m.comment("S2: rebuild, shifts; S2b: rebuild, adds");
    let ces = if codes_in_lanes(cfg) {
        // One copy of the S2 Ce row per weight column, kept apart so each sits by its column.
        [0, 1, 2].map(|j| {
            let q = m.reg_next(
                &format!("ce{j}"),
                ce.clone(),
                None,
                Reset::None,
                &format!("S2: Ce row, column {j}'s copy"),
            );
            m.keep_apart(&q);
            q
        })
    } else {
        [ce.clone(), ce.clone(), ce]
    };
    let t = rebuild::columns(&mut m, cfg, terms, &b, ces);
    // The shifts (S2) and the adds (S2b) in separate cycles: each is one long operation.
    let t_q = m.reg_next("terms", t, None, Reset::None, "S2b: shifted terms");
    let w = m.out_wire("w", u(3 * rb), "rebuilt weights");
    m.instance(add, "u_add", vec![("terms_i", t_q), ("w_o", w.clone())]);
    let w_q = m.reg_next("w", w, None, Reset::None, "S3: rebuilt weights");
    let wsh_q = wsh.map(|s| {
        let b = m.reg_next("wshift_b", s, None, Reset::None, "S2b: weight shift");
        m.reg_next("wshift", b, None, Reset::None, "S3: weight shift")
    });

    m.comment("S3: weight requant");
    let mut weights = Vec::new();
    for j in 0..3 {
        let wj = m.wire(&format!("w{j}"), w_q.field(j * rb, rb), "");
        let mw = match (wrequant, &wsh_q) {
            (Some(wr), Some(s)) => {
                let q = m.out_wire(&format!("wq{j}"), u(8), "int8 weight");
                m.instance(
                    wr,
                    &format!("u_wrequant{j}"),
                    vec![
                        ("clk_i", Expr::net("clk_i", u(1))),
                        ("w_i", wj),
                        ("shift_i", s.clone()),
                        ("q_o", q.clone()),
                    ],
                );
                q.as_signed()
            }
            // Exact mode: the weight waits a cycle, as long as the requantizer's shift stage.
            _ => m
                .reg_next(
                    &format!("wd{j}"),
                    wj,
                    None,
                    Reset::None,
                    "S4: rebuilt weight",
                )
                .as_signed(),
        };
        assert_eq!(mw.width(), mwb);
        weights.push(mw);
    }
    slots(&mut m, cfg, &x, &weights, mac, &acc_en, &first, &acc_o);
    m
}
