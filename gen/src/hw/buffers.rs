//! The accelerator's buffers: 1-write 1-read synchronous RAMs written in the shape Yosys maps to
//! block RAM (SB_RAM40_4K on iCE40, DP16KD on ECP5).

use super::{config_line, u};
use crate::ir::{Module, Reset};
use smartdeal_core::params::clog2;
use smartdeal_core::AccelConfig;

/// One buffer: module name, what it holds, word width, depth.
#[derive(Debug, Clone)]
pub struct Buffer {
    pub name: &'static str,
    pub doc: &'static str,
    pub width: u32,
    pub depth: u32,
    /// Its read data goes through one more register (`extra_stages`). The stream buffer's
    /// entry is always registered by the controller (S0r); the board link waits for the output
    /// buffer's extra cycle.
    pub extra_read_reg: bool,
}

impl Buffer {
    pub fn addr_bits(&self) -> u32 {
        clog2(u64::from(self.depth))
    }
}

/// The buffers of a configuration.
pub fn buffers(cfg: &AccelConfig) -> Vec<Buffer> {
    let mut v = vec![
        Buffer {
            name: "sd_act_buf",
            doc: "activation buffer: one word per Ce row, x[3r+j] at [j*act_bits +: act_bits]",
            width: cfg.act_word_bits(),
            depth: cfg.act_depth,
            extra_read_reg: cfg.extra_stages,
        },
        Buffer {
            name: "sd_coef_buf",
            doc: if cfg.is_dense() {
                "weight stream (dense baseline): one entry per row of one tile, all lanes' int8 weights"
            } else {
                "coefficient stream: one entry per present row of one tile"
            },
            width: cfg.coef_word_bits(),
            depth: cfg.coef_depth,
            extra_read_reg: false,
        },
        Buffer {
            name: "sd_oparam_buf",
            doc: "output parameters: {oshift, mult, bias} per output channel",
            width: cfg.oparam_word_bits(),
            depth: cfg.out_depth,
            extra_read_reg: cfg.extra_stages,
        },
        Buffer {
            name: "sd_out_buf",
            doc: "output buffer: int8 outputs",
            width: 8,
            depth: cfg.out_depth,
            extra_read_reg: cfg.extra_stages,
        },
    ];
    if cfg.has_basis() {
        v.insert(
            2,
            Buffer {
                name: "sd_b_buf",
                doc: "basis buffer: the B of all lanes for one block of one tile",
                width: cfg.b_word_bits(),
                depth: cfg.b_depth,
                extra_read_reg: cfg.extra_stages,
            },
        );
    }
    if cfg.has_wshift() {
        v.insert(
            3,
            Buffer {
                name: "sd_wshift_buf",
                doc: "weight shifts: all lanes' shifts for one tile",
                width: cfg.wshift_word_bits(),
                depth: cfg.wshift_depth(),
                extra_read_reg: cfg.extra_stages,
            },
        );
    }
    v
}

pub fn module(cfg: &AccelConfig, b: &Buffer) -> Module {
    let aw = b.addr_bits();
    let mut m = Module::new(
        b.name,
        &format!(
            "{}.\n{} words of {} bits; {}",
            b.doc,
            b.depth,
            b.width,
            match (cfg.single_port_buffers, b.extra_read_reg) {
                (true, false) =>
                    "single port (SPRAM shape): the write address while we_i, else the read\n\
                 address; registered read data (one cycle after the address), held on write cycles.",
                (true, true) =>
                    "single port (SPRAM shape): the write address while we_i, else the read\n\
                 address; read data registered twice (two cycles after the address).",
                (false, false) =>
                    "write port for the host (or the output stage), registered\n\
                 read port (data one cycle after the address).",
                (false, true) =>
                    "write port for the host (or the output stage), read port\n\
                 registered twice (data two cycles after the address): nothing follows the block\n\
                 RAM's clock-to-out in the cycle it reads.",
            }
        ),
        &config_line(cfg),
    );
    let _clk = m.input("clk_i", u(1), "clock");
    let we = m.input("we_i", u(1), "write enable");
    let waddr = m.input("waddr_i", u(aw), "write address");
    let wdata = m.input("wdata_i", u(b.width), "write data");
    let raddr = m.input("raddr_i", u(aw), "read address");
    let rdata_o = m.output("rdata_o", u(b.width), "read data (registered)");
    let rdata = if cfg.single_port_buffers {
        m.mem_single_port("mem", b.width, b.depth, we, waddr, wdata, raddr)
    } else {
        m.mem("mem", b.width, b.depth, we, waddr, wdata, raddr)
    };
    let rdata = if b.extra_read_reg {
        m.reg_next(
            "rdata",
            rdata,
            None,
            Reset::None,
            "the read data, once more",
        )
    } else {
        rdata
    };
    m.assign(&rdata_o, rdata);
    m
}
