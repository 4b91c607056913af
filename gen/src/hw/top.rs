//! Top level: host interface, buffers, controller, lanes, drain and output requantizer.

use super::buffers::Buffer;
use super::{config_line, u};
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::AccelConfig;
use std::collections::BTreeMap;

pub const NAME: &str = "sd_top";

/// The modules the top instantiates (built once, shared by all instances).
pub struct Parts<'a> {
    pub host_if: &'a Module,
    pub ctrl: &'a Module,
    pub lane: &'a Module,
    pub drain: &'a Module,
    pub out_requant: &'a Module,
    pub buffers: Vec<(Buffer, &'a Module)>,
}

/// The top's command, read and status ports.
struct Ports {
    cmd_valid: Expr,
    cmd_op: Expr,
    cmd_addr: Expr,
    cmd_data: Expr,
    rd_addr: Expr,
    rd_data_o: Expr,
    busy_o: Expr,
    done_o: Expr,
    err_o: Expr,
    cycles_o: Expr,
}

/// The host interface's outputs: the assembled buffer word and its write strobes, the run's
/// start and parameters.
struct HostNets {
    staging: Expr,
    /// Write enable of each buffer, by short name (`act`, `coef`, `b`, `wshift`, `oparam`).
    wes: BTreeMap<&'static str, Expr>,
    waddr: Expr,
    start: Expr,
    last_idx: Expr,
    relu: Expr,
    band: Expr,
    step: Expr,
    err: Expr,
    busy: Expr,
}

/// The controller's outputs (and the coefficient buffer's read data, which it consumes).
struct CtrlNets {
    coef_raddr: Expr,
    coef_rdata: Expr,
    act_raddr: Expr,
    act_valid: Expr,
    codes: Expr,
    acc_en: Expr,
    first: Expr,
    drain_load: Expr,
    drain_wrap: Expr,
    drain_busy: Expr,
    out_busy: Expr,
    done: Expr,
    cycles: Expr,
    b_raddr: Option<Expr>,
    wshift_raddr: Option<Expr>,
    /// The factorized dataflow's row and flush controls: row_en, seg_end, flush, term.
    factor: Option<[Expr; 4]>,
}

/// The nets around the buffers that the drain and the output requantizer drive, and every
/// buffer's read data by short name.
struct BufNets {
    oparam_raddr: Expr,
    out_valid: Expr,
    out_addr: Expr,
    out_y: Expr,
    rdata: BTreeMap<&'static str, Expr>,
}

fn clk() -> Expr {
    Expr::net("clk_i", u(1))
}

fn rst() -> Expr {
    Expr::net("rst_ni", u(1))
}

pub fn module(cfg: &AccelConfig, p: &Parts) -> Module {
    let mut m = Module::new(
        NAME,
        "SmartDeal accelerator, fully connected / 1x1 layers (docs/interface.md).\n\
         Load buffers with PUSH + WR_* commands, START a run, wait for done_o, read outputs\n\
         through rd_addr_i / rd_data_o (one cycle latency, two with extra_stages).",
        &config_line(cfg),
    );
    m.clock_reset();
    let io = ports(&mut m, cfg);
    let host = host_interface(&mut m, cfg, p, &io);
    mark_unused_host_outputs(&mut m, cfg, p, &host);
    let ctl = controller(&mut m, cfg, p, &host);
    let bufs = buffers(&mut m, cfg, p, &io, &host, &ctl);
    let x_q = slot_activations(&mut m, cfg, &host, &ctl, &bufs.rdata["act"]);
    let accs = lanes(&mut m, cfg, p, &ctl, &bufs.rdata, &x_q);
    drain_and_requant(&mut m, cfg, p, &host, &ctl, &bufs, accs);
    m.assign(&io.rd_data_o, bufs.rdata["out"].clone());
    m.assign(&io.busy_o, host.busy);
    m.assign(&io.done_o, ctl.done);
    m.assign(&io.err_o, host.err);
    m.assign(&io.cycles_o, ctl.cycles);
    m
}

fn ports(m: &mut Module, cfg: &AccelConfig) -> Ports {
    let cmd_valid = m.input("cmd_valid_i", u(1), "command strobe");
    let cmd_op = m.input("cmd_op_i", u(3), "command opcode");
    let cmd_addr = m.input("cmd_addr_i", u(16), "command address");
    let cmd_data = m.input("cmd_data_i", u(32), "command data");
    let rd_addr = m.input(
        "rd_addr_i",
        u(cfg.out_addr_bits()),
        "output buffer read address",
    );
    let rd_data_o = m.output(
        "rd_data_o",
        u(8),
        "output read data (one cycle after rd_addr_i, two with extra_stages)",
    );
    let busy_o = m.output("busy_o", u(1), "a run is in progress");
    let done_o = m.output("done_o", u(1), "the last run has finished");
    let err_o = m.output(
        "err_o",
        u(1),
        "a command was dropped because the core was busy",
    );
    let cycles_o = m.output("cycles_o", u(32), "cycles of the last run");
    Ports {
        cmd_valid,
        cmd_op,
        cmd_addr,
        cmd_data,
        rd_addr,
        rd_data_o,
        busy_o,
        done_o,
        err_o,
        cycles_o,
    }
}

/// The host interface: commands in, buffer writes and run starts out.
fn host_interface(m: &mut Module, cfg: &AccelConfig, p: &Parts, io: &Ports) -> HostNets {
    m.comment("Host interface");
    let sb = cfg.staging_bits();
    let staging = m.out_wire("staging", u(sb), "assembled buffer word");
    let we = |n: &str| format!("we_{n}");
    let names = ["act", "coef", "b", "wshift", "oparam"];
    let mut wes = BTreeMap::new();
    for n in names {
        wes.insert(n, m.out_wire(&we(n), u(1), ""));
    }
    let waddr = m.out_wire("waddr", u(16), "buffer write address");
    let start = m.out_wire("start", u(1), "run start");
    let last_idx = m.out_wire("last_idx", u(cfg.coef_addr_bits()), "");
    let relu = m.out_wire("relu", u(1), "");
    let band = m.out_wire(
        "band",
        u(cfg.band_param_bits()),
        "band parameters of the run",
    );
    let step = m.out_wire("step", u(2), "slot step of the run");
    let err = m.out_wire("err", u(1), "");
    let busy = m.out_wire("busy", u(1), "");
    let rst_n = part_reset(m, cfg, "host_if");
    m.instance(
        p.host_if,
        "u_host_if",
        vec![
            ("clk_i", clk()),
            ("rst_ni", rst_n),
            ("cmd_valid_i", io.cmd_valid.clone()),
            ("cmd_op_i", io.cmd_op.clone()),
            ("cmd_addr_i", io.cmd_addr.clone()),
            ("cmd_data_i", io.cmd_data.clone()),
            ("busy_i", busy.clone()),
            ("staging_o", staging.clone()),
            ("we_act_o", wes["act"].clone()),
            ("we_coef_o", wes["coef"].clone()),
            ("we_b_o", wes["b"].clone()),
            ("we_wshift_o", wes["wshift"].clone()),
            ("we_oparam_o", wes["oparam"].clone()),
            ("waddr_o", waddr.clone()),
            ("start_o", start.clone()),
            ("last_idx_o", last_idx.clone()),
            ("relu_o", relu.clone()),
            ("band_o", band.clone()),
            ("step_o", step.clone()),
            ("err_o", err.clone()),
        ],
    );
    HostNets {
        staging,
        wes,
        waddr,
        start,
        last_idx,
        relu,
        band,
        step,
        err,
        busy,
    }
}

/// The host interface serves every configuration: the staging and address bits above this
/// one's buffers, and the strobes of buffers it lacks, go nowhere.
fn mark_unused_host_outputs(m: &mut Module, cfg: &AccelConfig, p: &Parts, host: &HostNets) {
    let sb = cfg.staging_bits();
    let widest = p.buffers.iter().map(|(b, _)| b.width).max().unwrap_or(1);
    if widest < sb {
        m.unused(
            host.staging.slice(sb - 1, widest),
            "staging bits above the widest buffer word",
        );
    }
    let max_aw = p
        .buffers
        .iter()
        .map(|(b, _)| b.addr_bits())
        .max()
        .unwrap_or(1);
    if max_aw < 16 {
        m.unused(
            host.waddr.slice(15, max_aw),
            "address bits above the deepest buffer",
        );
    }
    if !cfg.has_wshift() {
        m.unused(
            host.wes["wshift"].clone(),
            "exact mode and the dense baseline have no weight shifts",
        );
    }
    if !cfg.has_basis() {
        m.unused(
            host.wes["b"].clone(),
            "the dense baseline has no basis buffer",
        );
    }
}

/// The run controller: stream read addresses, the codes for the lanes and the pipeline flags.
fn controller(m: &mut Module, cfg: &AccelConfig, p: &Parts, host: &HostNets) -> CtrlNets {
    m.comment("Controller");
    let coef_raddr = m.out_wire("coef_raddr", u(cfg.coef_addr_bits()), "");
    let coef_rdata = m.out_wire("coef_rdata", u(cfg.coef_word_bits()), "");
    let act_raddr = m.out_wire("act_raddr", u(cfg.act_addr_bits()), "");
    let act_valid = m.out_wire(
        "act_valid",
        u(1),
        "S2: the activation word is inside the image",
    );
    let codes = m.out_wire(
        "codes",
        u(cfg.coef_codes_bits()),
        if super::codes_in_lanes(cfg) {
            "S1r codes of all lanes"
        } else {
            "S2 codes of all lanes"
        },
    );
    let acc_en = m.out_wire("acc_en", u(1), "");
    let first = m.out_wire("first", u(1), "");
    let drain_load = m.out_wire("drain_load", u(1), "");
    let drain_wrap = m.out_wire("drain_wrap", u(1), "the drained tile ends a pass");
    let drain_busy = m.out_wire("drain_busy", u(1), "");
    let out_busy = m.out_wire("out_busy", u(1), "");
    let done = m.out_wire("done", u(1), "");
    let cycles = m.out_wire("cycles", u(32), "");
    let mut ctrl_conns = vec![
        ("clk_i", clk()),
        ("rst_ni", part_reset(m, cfg, "ctrl")),
        ("start_i", host.start.clone()),
        ("last_idx_i", host.last_idx.clone()),
        ("band_i", host.band.clone()),
        ("coef_rdata_i", coef_rdata.clone()),
        ("drain_busy_i", drain_busy.clone()),
        ("out_busy_i", out_busy.clone()),
        ("coef_raddr_o", coef_raddr.clone()),
        ("act_raddr_o", act_raddr.clone()),
        ("act_valid_o", act_valid.clone()),
        ("codes_o", codes.clone()),
        ("acc_en_o", acc_en.clone()),
        ("first_o", first.clone()),
        ("drain_load_o", drain_load.clone()),
        ("drain_wrap_o", drain_wrap.clone()),
        ("busy_o", host.busy.clone()),
        ("done_o", done.clone()),
        ("cycles_o", cycles.clone()),
    ];
    let b_raddr = cfg.has_basis().then(|| {
        let w = m.out_wire("b_raddr", u(cfg.b_addr_bits()), "");
        ctrl_conns.push(("b_raddr_o", w.clone()));
        w
    });
    let wshift_raddr = cfg.has_wshift().then(|| {
        let w = m.out_wire("wshift_raddr", u(cfg.wshift_addr_bits()), "");
        ctrl_conns.push(("wshift_raddr_o", w.clone()));
        w
    });
    let factor = cfg.is_factorized().then(|| {
        let tb = crate::hw::factor_ctrl::term_bits();
        let nets = [
            m.out_wire("row_en", u(1), "S3: a valid row"),
            m.out_wire("seg_end", u(1), "S3: the row ends its block segment"),
            m.out_wire("flush", u(1), "F1: a flush term is selected"),
            m.out_wire("term", u(tb), "F1: the flush term"),
        ];
        for (port, net) in ["row_en_o", "seg_end_o", "flush_o", "term_o"]
            .into_iter()
            .zip(&nets)
        {
            ctrl_conns.push((port, net.clone()));
        }
        nets
    });
    m.instance(p.ctrl, "u_ctrl", ctrl_conns);
    CtrlNets {
        coef_raddr,
        coef_rdata,
        act_raddr,
        act_valid,
        codes,
        acc_en,
        first,
        drain_load,
        drain_wrap,
        drain_busy,
        out_busy,
        done,
        cycles,
        b_raddr,
        wshift_raddr,
        factor,
    }
}

/// One instance per buffer: the host interface writes them (the output buffer: the output
/// requantizer), the controller reads them (the output buffer: the host).
fn buffers(
    m: &mut Module,
    cfg: &AccelConfig,
    p: &Parts,
    io: &Ports,
    host: &HostNets,
    ctl: &CtrlNets,
) -> BufNets {
    m.comment("Buffers");
    let oparam_raddr = m.out_wire("oparam_raddr", u(cfg.out_addr_bits()), "");
    let out_valid = m.out_wire("out_valid", u(1), "");
    let out_addr = m.out_wire("out_addr", u(cfg.out_addr_bits()), "");
    let out_y = m.out_wire("out_y", u(8), "");
    let mut rdata = BTreeMap::new();
    for (b, bm) in &p.buffers {
        let short = b.name.trim_start_matches("sd_").trim_end_matches("_buf");
        let aw = b.addr_bits();
        let rd = if short == "coef" {
            ctl.coef_rdata.clone()
        } else {
            m.out_wire(&format!("{short}_rdata"), u(b.width), "")
        };
        let (we_e, waddr_e, wdata_e, raddr_e) = match short {
            "out" => (
                out_valid.clone(),
                out_addr.clone(),
                out_y.clone(),
                io.rd_addr.clone(),
            ),
            _ => {
                let raddr = match short {
                    "act" => ctl.act_raddr.clone(),
                    "coef" => ctl.coef_raddr.clone(),
                    "b" => ctl.b_raddr.clone().expect("has_basis"),
                    "wshift" => ctl.wshift_raddr.clone().expect("has_wshift"),
                    "oparam" => oparam_raddr.clone(),
                    other => unreachable!("buffer {other}"),
                };
                (
                    host.wes[short].clone(),
                    host.waddr.slice(aw - 1, 0),
                    host.staging.slice(b.width - 1, 0),
                    raddr,
                )
            }
        };
        m.instance(
            bm,
            &format!("u_{short}_buf"),
            vec![
                ("clk_i", clk()),
                ("we_i", we_e),
                ("waddr_i", waddr_e),
                ("wdata_i", wdata_e),
                ("raddr_i", raddr_e),
                ("rdata_o", rd.clone()),
            ],
        );
        rdata.insert(short, rd);
    }
    BufNets {
        oparam_raddr,
        out_valid,
        out_addr,
        out_y,
        rdata,
    }
}

/// S2 → S3: every slot's three activations from the activation word, registered once for all
/// lanes. Slot p's value j is word value `step·p + j`: step 3 in a fully connected run (the
/// word holds `slots` tokens' triples), the stride in a band run (the word holds a window of
/// consecutive pixels, whose triples overlap). A word outside the image reads as zeros.
fn slot_activations(
    m: &mut Module,
    cfg: &AccelConfig,
    host: &HostNets,
    ctl: &CtrlNets,
    word: &Expr,
) -> Expr {
    m.comment("Slot activations");
    let ab = cfg.act_bits;
    let value = |i: u32| word.field(i * ab, ab);
    let is = |v: u128| host.step.clone().eq(Expr::lit(v, 2));
    let mut vals = Vec::new();
    for p in 0..cfg.slots {
        for j in 0..3 {
            vals.push(if p == 0 {
                value(j)
            } else {
                Expr::mux(
                    is(1),
                    value(p + j),
                    Expr::mux(is(2), value(2 * p + j), value(3 * p + j)),
                )
            });
        }
    }
    if cfg.slots == 1 {
        m.unused(
            host.step.clone(),
            "one slot: every step reads the word's first triple",
        );
    }
    vals.reverse(); // slot 0, value 0 least significant
    let sel = m.wire(
        "x_sel",
        Expr::concat(vals),
        "S2: the slots' activation triples",
    );
    let w = cfg.act_word_bits();
    let gated = Expr::mux(ctl.act_valid.clone(), sel, Expr::lit(0, w));
    m.reg_next("x", gated, None, Reset::None, "S3: the slots' activations")
}

/// The lanes, all fed the same activations; returns their accumulators, lane 0 first.
fn lanes(
    m: &mut Module,
    cfg: &AccelConfig,
    p: &Parts,
    ctl: &CtrlNets,
    rdata: &BTreeMap<&'static str, Expr>,
    x_q: &Expr,
) -> Vec<Expr> {
    m.comment("Lanes");
    let bb9 = 9 * cfg.basis_bits;
    let ce = 3 * cfg.coef_elem_bits();
    let mut accs = Vec::new();
    for lane in 0..cfg.lanes {
        let acc = m.out_wire(
            &format!("acc{lane}"),
            u(cfg.acc_bits * cfg.slots),
            "the lane's accumulators, slot 0 lowest",
        );
        let mut conns = vec![
            ("clk_i", clk()),
            ("rst_ni", part_reset(m, cfg, &format!("lane{lane}"))),
            ("x_i", x_q.clone()),
            ("acc_en_i", ctl.acc_en.clone()),
            ("first_i", ctl.first.clone()),
            ("acc_o", acc.clone()),
        ];
        if let Some([row_en, seg_end, flush, term]) = &ctl.factor {
            conns.push(("b_i", rdata["b"].field(lane * bb9, bb9)));
            conns.push(("ce_i", ctl.codes.field(lane * ce, ce)));
            conns.push(("row_en_i", row_en.clone()));
            conns.push(("seg_end_i", seg_end.clone()));
            conns.push(("flush_i", flush.clone()));
            conns.push(("term_i", term.clone()));
        } else if cfg.is_dense() {
            conns.push(("w_i", ctl.codes.field(lane * ce, ce)));
        } else {
            conns.push(("b_i", rdata["b"].field(lane * bb9, bb9)));
            conns.push(("ce_i", ctl.codes.field(lane * ce, ce)));
        }
        if cfg.has_wshift() {
            let wsb = cfg.wshift_bits();
            conns.push(("wshift_i", rdata["wshift"].field(lane * wsb, wsb)));
        }
        m.instance(p.lane, &format!("u_lane{lane}"), conns);
        accs.push(acc);
    }
    accs
}

/// The reset of one part (`part`: a lane, the host interface, the controller, the drain, the
/// output requantizer). With the extra stages each part has its own: a register (kept apart)
/// that the reset clears at once and that lets go one cycle after it, so the reset reaches each
/// part's registers from a register of its own instead of one net to all of them (the ECP5's
/// worst paths: 10.1 ns of routing to 16 lanes; at 100 MHz the net to the output requantizer,
/// 11.0 ns). Parts see their first input at least a cycle after `rst_ni` rises (the host's
/// first command, docs/interface.md; the lanes' acc_en nine registers after a START), so the
/// later release changes nothing.
fn part_reset(m: &mut Module, cfg: &AccelConfig, part: &str) -> Expr {
    if !cfg.extra_stages {
        return rst();
    }
    let r = m.reg(
        &format!("{part}_rst_n"),
        u(1),
        Reset::To(0),
        "the part's reset, released a cycle after rst_ni",
    );
    m.set_d(&r, Expr::lit(1, 1), None);
    m.keep_apart(&r);
    r
}

/// The drain takes each tile's accumulators and the output requantizer turns them into the
/// int8 outputs it writes to the output buffer.
fn drain_and_requant(
    m: &mut Module,
    cfg: &AccelConfig,
    p: &Parts,
    host: &HostNets,
    ctl: &CtrlNets,
    bufs: &BufNets,
    mut accs: Vec<Expr>,
) {
    m.comment("Drain and output requantization");
    let d_valid = m.out_wire("drain_valid", u(1), "");
    let d_addr = m.out_wire("drain_addr", u(cfg.out_addr_bits()), "");
    let d_acc = m.out_wire("drain_acc", u(cfg.acc_bits), "");
    accs.reverse(); // lane 0 least significant
    let drain_rst_n = part_reset(m, cfg, "drain");
    let oreq_rst_n = part_reset(m, cfg, "oreq");
    m.instance(
        p.drain,
        "u_drain",
        vec![
            ("clk_i", clk()),
            ("rst_ni", drain_rst_n),
            ("start_i", host.start.clone()),
            ("load_i", ctl.drain_load.clone()),
            ("wrap_i", ctl.drain_wrap.clone()),
            ("acc_i", Expr::concat(accs)),
            ("oparam_raddr_o", bufs.oparam_raddr.clone()),
            ("valid_o", d_valid.clone()),
            ("addr_o", d_addr.clone()),
            ("acc_o", d_acc.clone()),
            ("busy_o", ctl.drain_busy.clone()),
        ],
    );
    m.instance(
        p.out_requant,
        "u_out_requant",
        vec![
            ("clk_i", clk()),
            ("rst_ni", oreq_rst_n),
            ("valid_i", d_valid),
            ("addr_i", d_addr),
            ("acc_i", d_acc),
            ("oparam_i", bufs.rdata["oparam"].clone()),
            ("relu_i", host.relu.clone()),
            ("valid_o", bufs.out_valid.clone()),
            ("addr_o", bufs.out_addr.clone()),
            ("y_o", bufs.out_y.clone()),
            ("busy_o", ctl.out_busy.clone()),
        ],
    );
}
