//! One MAC product on the ECP5's DSP block (`mac_mul = "mult18x18d"`): `MULT18X18D` instantiated
//! with its input and output registers, which Yosys does not use when it maps a `*` to the block.
//! Mapped, the 3.9 ns multiplier sat between fabric registers that nextpnr placed 3–6 ns of
//! routing away on both sides; registered inside, each route has a cycle of its own.
//!
//! The wiring mirrors Yosys's own `$mul` mapping (`+/lattice/dsp_map_18x18.v`: C, SOURCEA and
//! SOURCEB tied low, SIGNEDA/SIGNEDB for signed operands) plus the three register parameters on
//! CLK0 with CE0 high and RST0 low. [`sim_model`] is the primitive as Verilator sees it: no open
//! simulation model of the block exists (Yosys ships a blackbox), so the co-simulation checks
//! this wrapper's wiring and latency against the golden model through a model of the registers
//! as Lattice documents them (TN1267, sysDSP: input, pipeline and output registers, each on its
//! CLK/CE/RST selection), and the real block only on the board.

use super::{config_line, u};
use crate::ir::{Dir, Expr, Module};
use smartdeal_core::AccelConfig;

pub const NAME: &str = "sd_mac_mul";

/// The vendor primitive.
pub const PRIMITIVE: &str = "MULT18X18D";

/// Operand width of the block.
const OPERAND_BITS: u32 = 18;

/// Product width of the block.
const PRODUCT_BITS: u32 = 36;

/// The primitive's ports the wrapper connects, as an IR module used only to check the instance
/// (never emitted: Yosys has the cell, Verilator gets [`sim_model`]).
fn primitive_ports() -> Module {
    let mut m = Module::new(PRIMITIVE, "vendor DSP primitive", "");
    for bus in ["A", "B", "C"] {
        for i in 0..OPERAND_BITS {
            m.primitive_port(&format!("{bus}{i}"), Dir::In, 1);
        }
    }
    for p in [
        "SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB", "CLK0", "CE0", "RST0",
    ] {
        m.primitive_port(p, Dir::In, 1);
    }
    for i in 0..PRODUCT_BITS {
        m.primitive_port(&format!("P{i}"), Dir::Out, 1);
    }
    m
}

/// The register parameters of the instance: A, B and P registered on CLK0 (CE0, RST0 by
/// default), no pipeline register.
fn parameters() -> Vec<(&'static str, String)> {
    ["REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"]
        .into_iter()
        .map(|p| (p, "\"CLK0\"".to_string()))
        .collect()
}

/// `sd_mac_mul`: `p_o` is the signed product `a_i · b_i` of two cycles before (the input and the
/// output register).
pub fn module(cfg: &AccelConfig) -> Module {
    let ab = cfg.act_bits;
    let wb = cfg.mac_weight_bits();
    let pb = super::lane::product_bits(cfg);
    let mut m = Module::new(
        NAME,
        "One MAC product on the ECP5's MULT18X18D with its input and output registers:\n\
         p_o is the signed product a_i * b_i of two cycles before.",
        &config_line(cfg),
    );
    let clk = m.input("clk_i", u(1), "clock");
    let a = m.input("a_i", u(ab), "activation (signed)");
    let b = m.input("b_i", u(wb), "MAC weight (signed)");
    let p_o = m.output("p_o", u(pb), "a_i * b_i (signed) of two cycles before");
    // act_bits → 18 and mac_weight_bits → 18, sign-extended: the block multiplies two signed
    // 18-bit operands (SIGNEDA, SIGNEDB high) into a 36-bit product.
    let a18 = m.wire("a18", a.as_signed().sext(OPERAND_BITS), "A operand");
    let b18 = m.wire("b18", b.as_signed().sext(OPERAND_BITS), "B operand");
    let p36 = m.out_wire("p36", u(PRODUCT_BITS), "the block's registered product");
    let zero = Expr::lit(0, 1);
    let one = Expr::lit(1, 1);
    let mut conns: Vec<(String, Expr)> = Vec::new();
    for (bus, e) in [("A", Some(&a18)), ("B", Some(&b18)), ("C", None)] {
        for i in 0..OPERAND_BITS {
            let bit = e.map_or_else(|| zero.clone(), |e| e.bit(i));
            conns.push((format!("{bus}{i}"), bit));
        }
    }
    for (p, e) in [
        ("SIGNEDA", one.clone()),
        ("SIGNEDB", one.clone()),
        ("SOURCEA", zero.clone()),
        ("SOURCEB", zero.clone()),
        ("CLK0", clk),
        ("CE0", one),
        ("RST0", zero),
    ] {
        conns.push((p.to_string(), e));
    }
    for i in 0..PRODUCT_BITS {
        conns.push((format!("P{i}"), p36.bit(i)));
    }
    m.instance_with_params(
        &primitive_ports(),
        "u_mul",
        parameters(),
        conns.iter().map(|(n, e)| (n.as_str(), e.clone())).collect(),
    );
    // 36 → product_bits: the product of an act_bits and a mac_weight_bits signed operand fits
    // product_bits signed bits, so the bits above are its sign.
    m.assign(&p_o, p36.field(0, pb));
    m.unused(
        p36.slice(PRODUCT_BITS - 1, pb),
        "the product's sign extension above product_bits",
    );
    m
}

/// `(file name, Verilog)` of the simulation model of `MULT18X18D` (see the module docs): the
/// ports and parameters the wrapper uses, the input registers, the multiply and the output
/// register, each register on CLK0 when its `REG_*_CLK` is `"CLK0"` and combinational when
/// `"NONE"`, enabled by CE0 and synchronously cleared by RST0.
pub fn sim_model(generator: &str) -> (String, String) {
    let bus = |name: &str, n: u32, dir: &str| -> String {
        (0..n)
            .rev()
            .map(|i| format!("  {dir} wire {name}{i},\n"))
            .collect()
    };
    let cat = |name: &str, n: u32| -> String {
        (0..n)
            .rev()
            .map(|i| format!("{name}{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let p_assign: String = (0..PRODUCT_BITS)
        .map(|i| format!("  assign P{i} = p_q[{i}];\n"))
        .collect();
    let text = format!(
        "// Generated by {generator}. Do not edit.\n\
         // SIMULATION MODEL ONLY (Verilator lint and co-simulation); synthesis uses the real\n\
         // {PRIMITIVE} cell. The subset sd_mac_mul uses: A and B (18 bits, SIGNEDA/SIGNEDB),\n\
         // the input, pipeline and output registers on CLK0 or none, CE0 and a synchronous\n\
         // RST0. C, SOURCEA and SOURCEB (cascades) must be low.\n\
         /* verilator lint_off UNUSEDPARAM */\n\
         module {PRIMITIVE} #(\n\
         \x20 parameter REG_INPUTA_CLK = \"NONE\",\n\
         \x20 parameter REG_INPUTB_CLK = \"NONE\",\n\
         \x20 parameter REG_PIPELINE_CLK = \"NONE\",\n\
         \x20 parameter REG_OUTPUT_CLK = \"NONE\",\n\
         \x20 parameter GSR = \"ENABLED\",\n\
         \x20 parameter RESETMODE = \"SYNC\"\n\
         ) (\n{a}{b}{c}\
         \x20 input  wire SIGNEDA,\n\
         \x20 input  wire SIGNEDB,\n\
         \x20 input  wire SOURCEA,\n\
         \x20 input  wire SOURCEB,\n\
         \x20 input  wire CLK0,\n\
         \x20 input  wire CE0,\n\
         \x20 input  wire RST0,\n{p}\
         );\n\
         /* verilator lint_on UNUSEDPARAM */\n\
         \x20 /* verilator lint_off UNUSEDSIGNAL */\n\
         \x20 wire unused_inputs = ^{{{cs}, SOURCEA, SOURCEB}};\n\
         \x20 /* verilator lint_on UNUSEDSIGNAL */\n\
         \x20 wire [17:0] a = {{{ac}}};\n\
         \x20 wire [17:0] b = {{{bc}}};\n\
         \x20 reg  [17:0] a_q = 18'd0, b_q = 18'd0;\n\
         \x20 reg  signed_a_q = 1'b0, signed_b_q = 1'b0;\n\
         \x20 reg  [35:0] m_q = 36'd0, p_q_r = 36'd0;\n\
         \x20 // Each register is used when its REG_*_CLK names CLK0, else bypassed.\n\
         \x20 wire [17:0] a_in = (REG_INPUTA_CLK == \"CLK0\") ? a_q : a;\n\
         \x20 wire [17:0] b_in = (REG_INPUTB_CLK == \"CLK0\") ? b_q : b;\n\
         \x20 wire sa = (REG_INPUTA_CLK == \"CLK0\") ? signed_a_q : SIGNEDA;\n\
         \x20 wire sb = (REG_INPUTB_CLK == \"CLK0\") ? signed_b_q : SIGNEDB;\n\
         \x20 // 18 x 18 -> 36: each operand extended by its sign when SIGNED*, else by zeros.\n\
         \x20 wire [35:0] a36 = {{{{18{{sa & a_in[17]}}}}, a_in}};\n\
         \x20 wire [35:0] b36 = {{{{18{{sb & b_in[17]}}}}, b_in}};\n\
         \x20 wire [35:0] m = a36 * b36;\n\
         \x20 wire [35:0] pipe = (REG_PIPELINE_CLK == \"CLK0\") ? m_q : m;\n\
         \x20 wire [35:0] p_q = (REG_OUTPUT_CLK == \"CLK0\") ? p_q_r : pipe;\n\
         \x20 always @(posedge CLK0) begin\n\
         \x20   if (RST0) begin\n\
         \x20     a_q <= 18'd0;\n\
         \x20     b_q <= 18'd0;\n\
         \x20     signed_a_q <= 1'b0;\n\
         \x20     signed_b_q <= 1'b0;\n\
         \x20     m_q <= 36'd0;\n\
         \x20     p_q_r <= 36'd0;\n\
         \x20   end else if (CE0) begin\n\
         \x20     a_q <= a;\n\
         \x20     b_q <= b;\n\
         \x20     signed_a_q <= SIGNEDA;\n\
         \x20     signed_b_q <= SIGNEDB;\n\
         \x20     m_q <= m;\n\
         \x20     p_q_r <= pipe;\n\
         \x20   end\n\
         \x20 end\n\
         {p_assign}\
         endmodule\n",
        a = bus("A", OPERAND_BITS, "input "),
        b = bus("B", OPERAND_BITS, "input "),
        c = bus("C", OPERAND_BITS, "input "),
        p = bus("P", PRODUCT_BITS, "output")
            .trim_end_matches(",\n")
            .to_string()
            + "\n",
        cs = cat("C", OPERAND_BITS),
        ac = cat("A", OPERAND_BITS),
        bc = cat("B", OPERAND_BITS),
    );
    (format!("{PRIMITIVE}.v"), text)
}
