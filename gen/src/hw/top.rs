//! Top level: host interface, buffers, controller, lanes, drain and output requantizer.

use super::buffers::Buffer;
use super::{config_line, u};
use crate::ir::{Expr, Module, Reset};
use smartdeal_core::AccelConfig;

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

pub fn module(cfg: &AccelConfig, p: &Parts) -> Module {
    let l = cfg.lanes;
    let ab = cfg.acc_bits;
    let mut m = Module::new(
        NAME,
        "SmartDeal accelerator, fully connected / 1x1 layers (docs/interface.md).\n\
         Load buffers with PUSH + WR_* commands, START a run, wait for done_o, read outputs\n\
         through rd_addr_i / rd_data_o (one cycle latency).",
        &config_line(cfg),
    );
    m.clock_reset();
    let clk = Expr::net("clk_i", u(1));
    let rst = Expr::net("rst_ni", u(1));
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
        "output read data (one cycle after rd_addr_i)",
    );
    let busy_o = m.output("busy_o", u(1), "a run is in progress");
    let done_o = m.output("done_o", u(1), "the last run has finished");
    let err_o = m.output(
        "err_o",
        u(1),
        "a command was dropped because the core was busy",
    );
    let cycles_o = m.output("cycles_o", u(32), "cycles of the last run");

    m.comment("Host interface");
    let sb = cfg.staging_bits();
    let staging = m.out_wire("staging", u(sb), "assembled buffer word");
    let we = |n: &str| format!("we_{n}");
    let names = ["act", "coef", "b", "wshift", "oparam"];
    let mut wes = std::collections::BTreeMap::new();
    for n in names {
        wes.insert(n, m.out_wire(&we(n), u(1), ""));
    }
    let waddr = m.out_wire("waddr", u(16), "buffer write address");
    let start = m.out_wire("start", u(1), "run start");
    let last_idx = m.out_wire("last_idx", u(cfg.coef_addr_bits()), "");
    let relu = m.out_wire("relu", u(1), "");
    let err = m.out_wire("err", u(1), "");
    let busy = m.out_wire("busy", u(1), "");
    m.instance(
        p.host_if,
        "u_host_if",
        vec![
            ("clk_i", clk.clone()),
            ("rst_ni", rst.clone()),
            ("cmd_valid_i", cmd_valid),
            ("cmd_op_i", cmd_op),
            ("cmd_addr_i", cmd_addr),
            ("cmd_data_i", cmd_data),
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
            ("err_o", err.clone()),
        ],
    );
    let widest = p.buffers.iter().map(|(b, _)| b.width).max().unwrap_or(1);
    if widest < sb {
        m.unused(
            staging.slice(sb - 1, widest),
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
            waddr.slice(15, max_aw),
            "address bits above the deepest buffer",
        );
    }
    if !cfg.has_wshift() {
        m.unused(
            wes["wshift"].clone(),
            "exact mode and the dense baseline have no weight shifts",
        );
    }
    if !cfg.has_basis() {
        m.unused(wes["b"].clone(), "the dense baseline has no basis buffer");
    }

    m.comment("Controller");
    let coef_raddr = m.out_wire("coef_raddr", u(cfg.coef_addr_bits()), "");
    let coef_rdata = m.out_wire("coef_rdata", u(cfg.coef_word_bits()), "");
    let act_raddr = m.out_wire("act_raddr", u(cfg.act_addr_bits()), "");
    let codes = m.out_wire("codes", u(cfg.coef_codes_bits()), "S2 codes of all lanes");
    let acc_en = m.out_wire("acc_en", u(1), "");
    let first = m.out_wire("first", u(1), "");
    let drain_load = m.out_wire("drain_load", u(1), "");
    let drain_busy = m.out_wire("drain_busy", u(1), "");
    let out_busy = m.out_wire("out_busy", u(1), "");
    let done = m.out_wire("done", u(1), "");
    let cycles = m.out_wire("cycles", u(32), "");
    let mut ctrl_conns = vec![
        ("clk_i", clk.clone()),
        ("rst_ni", rst.clone()),
        ("start_i", start.clone()),
        ("last_idx_i", last_idx),
        ("coef_rdata_i", coef_rdata.clone()),
        ("drain_busy_i", drain_busy.clone()),
        ("out_busy_i", out_busy.clone()),
        ("coef_raddr_o", coef_raddr.clone()),
        ("act_raddr_o", act_raddr.clone()),
        ("codes_o", codes.clone()),
        ("acc_en_o", acc_en.clone()),
        ("first_o", first.clone()),
        ("drain_load_o", drain_load.clone()),
        ("busy_o", busy.clone()),
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
    m.instance(p.ctrl, "u_ctrl", ctrl_conns);

    m.comment("Buffers");
    let oparam_raddr = m.out_wire("oparam_raddr", u(cfg.out_addr_bits()), "");
    let out_valid = m.out_wire("out_valid", u(1), "");
    let out_addr = m.out_wire("out_addr", u(cfg.out_addr_bits()), "");
    let out_y = m.out_wire("out_y", u(8), "");
    let mut rdata = std::collections::BTreeMap::new();
    for (b, bm) in &p.buffers {
        let short = b.name.trim_start_matches("sd_").trim_end_matches("_buf");
        let aw = b.addr_bits();
        let rd = if short == "coef" {
            coef_rdata.clone()
        } else {
            m.out_wire(&format!("{short}_rdata"), u(b.width), "")
        };
        let (we_e, waddr_e, wdata_e, raddr_e) = match short {
            "out" => (
                out_valid.clone(),
                out_addr.clone(),
                out_y.clone(),
                rd_addr.clone(),
            ),
            _ => {
                let raddr = match short {
                    "act" => act_raddr.clone(),
                    "coef" => coef_raddr.clone(),
                    "b" => b_raddr.clone().expect("has_basis"),
                    "wshift" => wshift_raddr.clone().expect("has_wshift"),
                    "oparam" => oparam_raddr.clone(),
                    other => unreachable!("buffer {other}"),
                };
                (
                    wes[short].clone(),
                    waddr.slice(aw - 1, 0),
                    staging.slice(b.width - 1, 0),
                    raddr,
                )
            }
        };
        m.instance(
            bm,
            &format!("u_{short}_buf"),
            vec![
                ("clk_i", clk.clone()),
                ("we_i", we_e),
                ("waddr_i", waddr_e),
                ("wdata_i", wdata_e),
                ("raddr_i", raddr_e),
                ("rdata_o", rd.clone()),
            ],
        );
        rdata.insert(short, rd);
    }

    m.comment("Lanes");
    let x_q = m.reg_next(
        "x",
        rdata["act"].clone(),
        None,
        Reset::None,
        "S3: activations of the row",
    );
    let bb9 = 9 * cfg.basis_bits;
    let ce = 3 * cfg.coef_elem_bits();
    let mut accs = Vec::new();
    for lane in 0..l {
        let acc = m.out_wire(&format!("acc{lane}"), u(ab), "");
        let mut conns = vec![
            ("clk_i", clk.clone()),
            ("rst_ni", rst.clone()),
            ("x_i", x_q.clone()),
            ("acc_en_i", acc_en.clone()),
            ("first_i", first.clone()),
            ("acc_o", acc.clone()),
        ];
        if cfg.is_dense() {
            conns.push(("w_i", codes.field(lane * ce, ce)));
        } else {
            conns.push(("b_i", rdata["b"].field(lane * bb9, bb9)));
            conns.push(("ce_i", codes.field(lane * ce, ce)));
        }
        if cfg.has_wshift() {
            let wsb = cfg.wshift_bits();
            conns.push(("wshift_i", rdata["wshift"].field(lane * wsb, wsb)));
        }
        m.instance(p.lane, &format!("u_lane{lane}"), conns);
        accs.push(acc);
    }

    m.comment("Drain and output requantization");
    let d_valid = m.out_wire("drain_valid", u(1), "");
    let d_addr = m.out_wire("drain_addr", u(cfg.out_addr_bits()), "");
    let d_acc = m.out_wire("drain_acc", u(ab), "");
    accs.reverse(); // lane 0 least significant
    m.instance(
        p.drain,
        "u_drain",
        vec![
            ("clk_i", clk.clone()),
            ("rst_ni", rst.clone()),
            ("start_i", start),
            ("load_i", drain_load),
            ("acc_i", Expr::concat(accs)),
            ("oparam_raddr_o", oparam_raddr),
            ("valid_o", d_valid.clone()),
            ("addr_o", d_addr.clone()),
            ("acc_o", d_acc.clone()),
            ("busy_o", drain_busy),
        ],
    );
    m.instance(
        p.out_requant,
        "u_out_requant",
        vec![
            ("clk_i", clk),
            ("rst_ni", rst),
            ("valid_i", d_valid),
            ("addr_i", d_addr),
            ("acc_i", d_acc),
            ("oparam_i", rdata["oparam"].clone()),
            ("relu_i", relu),
            ("valid_o", out_valid),
            ("addr_o", out_addr),
            ("y_o", out_y),
            ("busy_o", out_busy),
        ],
    );
    m.assign(&rd_data_o, rdata["out"].clone());
    m.assign(&busy_o, busy);
    m.assign(&done_o, done);
    m.assign(&err_o, err);
    m.assign(&cycles_o, cycles);
    m
}
