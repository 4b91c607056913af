//! The whole accelerator: builds every module once, in dependency order, and writes the output
//! folder (one `.v` per module, `params.json`, `files.f`).

use crate::hw::{self, buffers, top};
use crate::ir::{emit, Dir, Module};
pub use crate::options::{Fault, GenOptions};
use serde::Serialize;
use smartdeal_core::image::CoefLayout;
use smartdeal_core::{AccelConfig, MacMul, WeightRequant};
use std::path::Path;

/// Generated Verilog: one file per module.
#[derive(Debug, Clone)]
pub struct Design {
    /// Name of the top module.
    pub top: String,
    /// The modules, leaves first, top last.
    pub modules: Vec<Module>,
    /// `(file name, text)` in the same order.
    pub files: Vec<(String, String)>,
    /// params.json text.
    pub params_json: String,
    /// `(file name, text)` of behavioural models of the vendor primitives the design
    /// instantiates, for Verilator only (synthesis has the cells): written to `sim/`.
    pub sim_models: Vec<(String, String)>,
}

/// The generator's name and version, written into every header.
pub fn generator_id() -> String {
    format!("smartdeal-gen {} (gen-verilog)", env!("CARGO_PKG_VERSION"))
}

/// Builds the accelerator for a validated configuration.
pub fn generate(cfg: &AccelConfig, opts: &GenOptions) -> Design {
    cfg.validate().expect("generate() takes a validated config");
    // The dense baseline has no decoder, rebuild engine or weight requantizer.
    let mut leaves = Vec::new();
    // The ECP5 DSP block wrapper of `mac_mul = "mult18x18d"`.
    let mac = (cfg.mac_mul == MacMul::Mult18x18d).then(|| hw::mac_mul::module(cfg));
    let lane = if cfg.is_dense() {
        hw::lane::dense_module(cfg, mac.as_ref())
    } else if cfg.is_factorized() {
        let term = hw::factor_row::term_module(cfg);
        let add = hw::factor_row::add_module(cfg, opts.fault);
        let lane = hw::factor_lane::module(cfg, &term, &add);
        leaves.extend([term, add]);
        lane
    } else {
        let decoder = hw::decoder::module(cfg);
        let terms = hw::rebuild::terms_module(cfg, &decoder, opts.fault);
        let add = hw::rebuild::add_module(cfg);
        let wrequant = match cfg.weight_requant {
            WeightRequant::Int8 => Some(hw::wrequant::module(cfg)),
            WeightRequant::Exact => None,
        };
        let lane = hw::lane::module(cfg, &terms, &add, wrequant.as_ref(), mac.as_ref());
        leaves.extend([decoder, terms, add]);
        leaves.extend(wrequant);
        lane
    };
    leaves.extend(mac);
    let out_requant = hw::out_requant::module(cfg);
    let drain = hw::drain::module(cfg);
    let ctrl = hw::ctrl::module(cfg);
    let host_if = hw::host_if::module(cfg);
    let bufs: Vec<(buffers::Buffer, Module)> = buffers::buffers(cfg)
        .into_iter()
        .map(|b| {
            let m = buffers::module(cfg, &b);
            (b, m)
        })
        .collect();
    let top = top::module(
        cfg,
        &top::Parts {
            host_if: &host_if,
            ctrl: &ctrl,
            lane: &lane,
            drain: &drain,
            out_requant: &out_requant,
            buffers: bufs.iter().map(|(b, m)| (b.clone(), m)).collect(),
        },
    );
    let mut modules = leaves;
    modules.extend([lane, out_requant, drain, ctrl, host_if]);
    modules.extend(bufs.into_iter().map(|(_, m)| m));
    modules.push(top);
    let gen = generator_id();
    let files = modules
        .iter()
        .map(|m| (format!("{}.v", m.name), emit::module(m, &gen)))
        .collect();
    let params_json = params_json(cfg, modules.last().expect("top"));
    let sim_models = if cfg.mac_mul == MacMul::Mult18x18d {
        vec![hw::mac_mul::sim_model(&gen)]
    } else {
        Vec::new()
    };
    Design {
        top: top::NAME.to_string(),
        modules,
        files,
        params_json,
        sim_models,
    }
}

/// Signed operand widths of every multiplier in the design (three per lane and slot: activation × MAC
/// weight, or in the factorized dataflow one per lane and slot: basis × block accumulator; one in
/// the output requantizer): what an FPGA flow needs to budget DSP blocks.
pub fn multipliers(cfg: &AccelConfig) -> Vec<(u32, u32)> {
    let mut v = if cfg.is_factorized() {
        vec![(cfg.basis_bits, cfg.factor_acc_bits()); (cfg.lanes * cfg.slots) as usize]
    } else {
        vec![(cfg.act_bits, cfg.mac_weight_bits()); (3 * cfg.lanes * cfg.slots) as usize]
    };
    v.push(hw::out_requant::multiplier_widths(cfg));
    v
}

#[derive(Serialize)]
struct PortJson<'a> {
    name: &'a str,
    dir: &'static str,
    width: u32,
    doc: &'a str,
}

#[derive(Serialize)]
struct Derived {
    code_max: u32,
    rebuild_bits: u32,
    mac_weight_bits: u32,
    wshift_bits: u32,
    wshift_max: u32,
    acc_bits_required: u32,
    staging_bits: u32,
    act_word_bits: u32,
    coef_word_bits: u32,
    b_word_bits: u32,
    wshift_word_bits: u32,
    oparam_word_bits: u32,
    wshift_depth: u32,
    coef_layout: CoefLayoutJson,
}

#[derive(Serialize)]
struct CoefLayoutJson {
    codes_lo: u32,
    coef_elem_bits: u32,
    bsel_lo: u32,
    bsel_bits: u32,
    row_lo: u32,
    first_bit: u32,
    last_bit: u32,
}

#[derive(Serialize)]
struct ParamsJson<'a> {
    format_version: u32,
    generator: String,
    fingerprint: String,
    top: &'a str,
    config: &'a AccelConfig,
    derived: Derived,
    opcodes: Vec<(&'static str, u32)>,
    ports: Vec<PortJson<'a>>,
}

fn params_json(cfg: &AccelConfig, top: &Module) -> String {
    use hw::host_if::op;
    let lay = CoefLayout::of(cfg);
    let p = ParamsJson {
        format_version: 1,
        generator: generator_id(),
        fingerprint: cfg.fingerprint(),
        top: &top.name,
        config: cfg,
        derived: Derived {
            code_max: cfg.code_max(),
            rebuild_bits: cfg.rebuild_bits(),
            mac_weight_bits: cfg.mac_weight_bits(),
            wshift_bits: cfg.wshift_bits(),
            wshift_max: cfg.wshift_max(),
            acc_bits_required: cfg.acc_bits_required(),
            staging_bits: cfg.staging_bits(),
            act_word_bits: cfg.act_word_bits(),
            coef_word_bits: cfg.coef_word_bits(),
            b_word_bits: cfg.b_word_bits(),
            wshift_word_bits: cfg.wshift_word_bits(),
            oparam_word_bits: cfg.oparam_word_bits(),
            wshift_depth: cfg.wshift_depth(),
            coef_layout: CoefLayoutJson {
                codes_lo: lay.codes_lo,
                coef_elem_bits: cfg.coef_elem_bits(),
                bsel_lo: lay.bsel_lo,
                bsel_bits: cfg.bsel_bits(),
                row_lo: lay.row_lo,
                first_bit: lay.first_bit,
                last_bit: lay.last_bit,
            },
        },
        opcodes: vec![
            ("NOP", op::NOP),
            ("PUSH", op::PUSH),
            ("WR_ACT", op::WR_ACT),
            ("WR_COEF", op::WR_COEF),
            ("WR_B", op::WR_B),
            ("WR_WSHIFT", op::WR_WSHIFT),
            ("WR_OPARAM", op::WR_OPARAM),
            ("START", op::START),
        ],
        ports: top
            .ports
            .iter()
            .map(|p| PortJson {
                name: &p.name,
                dir: match p.dir {
                    Dir::In => "input",
                    Dir::Out => "output",
                },
                width: p.ty.width,
                doc: &p.doc,
            })
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&p).expect("params serialize");
    s.push('\n');
    s
}

impl Design {
    /// The top module.
    pub fn top_module(&self) -> &Module {
        self.modules.last().expect("a design has a top")
    }

    /// Writes every `.v`, `params.json` and `files.f` (the file list, leaves first) into `dir`,
    /// and the simulation models into `dir/sim`; returns the `.v` paths.
    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut paths = Vec::new();
        for (name, text) in &self.files {
            let p = dir.join(name);
            std::fs::write(&p, text)?;
            paths.push(p);
        }
        std::fs::write(dir.join("params.json"), &self.params_json)?;
        let list: String = self.files.iter().map(|(n, _)| format!("{n}\n")).collect();
        std::fs::write(dir.join("files.f"), list)?;
        write_sim_models(dir, &self.sim_models)?;
        Ok(paths)
    }

    /// [`Design::write`], returning the sources Verilator needs: the simulation models first,
    /// then the design.
    pub fn write_for_simulation(&self, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
        let design = self.write(dir)?;
        let mut paths = write_sim_models(dir, &self.sim_models)?;
        paths.extend(design);
        Ok(paths)
    }
}

/// Writes simulation models of vendor primitives (`(file name, text)`) into `dir/sim` and
/// returns their paths.
pub(crate) fn write_sim_models(
    dir: &Path,
    models: &[(String, String)],
) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut paths = Vec::new();
    if !models.is_empty() {
        std::fs::create_dir_all(dir.join("sim"))?;
        for (name, text) in models {
            let p = dir.join("sim").join(name);
            std::fs::write(&p, text)?;
            paths.push(p);
        }
    }
    Ok(paths)
}
