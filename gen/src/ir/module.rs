//! Modules: ports, wires, registers, memories and instances, built with checked widths.

use super::expr::{Expr, Ty};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    In,
    Out,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub dir: Dir,
    pub ty: Ty,
    pub doc: String,
}

/// How a register resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// Asynchronous active-low reset (`rst_ni`) to this value.
    To(u128),
    /// No reset (datapath registers: lets synthesis pack them into RAM/DSP outputs).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Comment(String),
    /// `wire [w-1:0] name; assign name = expr;`
    Wire {
        name: String,
        ty: Ty,
        expr: Expr,
        doc: String,
    },
    /// A register `name_q` with next value `name_d`.
    Reg {
        base: String,
        ty: Ty,
        reset: Reset,
        d: Option<Expr>,
        enable: Option<Expr>,
        doc: String,
        /// Emitted in a `(* keep *)` block: synthesis must not merge it with an identical
        /// register elsewhere (see [`Module::keep_apart`]).
        keep: bool,
    },
    /// A 1-write 1-read synchronous memory (Yosys infers block RAM from this shape), or with
    /// `single_port` one address for both (`waddr` = `raddr`) and no read on a write cycle
    /// (the shape Yosys maps to the UP5K's SB_SPRAM256KA).
    Mem {
        name: String,
        width: u32,
        depth: u32,
        we: Expr,
        waddr: Expr,
        wdata: Expr,
        raddr: Expr,
        /// Registered read data net name.
        rdata: String,
        single_port: bool,
    },
    Instance {
        module: String,
        name: String,
        /// Parameter overrides `(name, Verilog constant)`; only vendor primitives take them
        /// (generated modules are specialised by the generator instead).
        params: Vec<(String, String)>,
        conns: Vec<(String, Expr)>,
    },
    /// Output port assignment.
    Assign {
        port: String,
        expr: Expr,
    },
    /// A wire declared without an assignment (driven by an instance output).
    Decl {
        name: String,
        ty: Ty,
        doc: String,
    },
}

/// A module under construction.
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub doc: Vec<String>,
    pub ports: Vec<Port>,
    pub items: Vec<Item>,
    /// Config summary for the header.
    pub config_line: String,
    names: BTreeSet<String>,
    unused: u32,
}

impl Module {
    pub fn new(name: &str, doc: &str, config_line: &str) -> Module {
        Module {
            name: name.to_string(),
            doc: doc.lines().map(str::to_string).collect(),
            ports: Vec::new(),
            items: Vec::new(),
            config_line: config_line.to_string(),
            names: BTreeSet::new(),
            unused: 0,
        }
    }

    fn claim(&mut self, name: &str) {
        assert!(
            self.names.insert(name.to_string()),
            "module {}: name `{name}` declared twice",
            self.name
        );
    }

    /// The conventional clock and active-low asynchronous reset inputs.
    pub fn clock_reset(&mut self) {
        self.input("clk_i", Ty::u(1), "clock");
        self.input("rst_ni", Ty::u(1), "asynchronous reset, active low");
    }

    pub fn input(&mut self, name: &str, ty: Ty, doc: &str) -> Expr {
        assert!(
            name.ends_with("_i") || name.ends_with("_ni"),
            "input `{name}` must end in _i"
        );
        self.add_port(name, Dir::In, ty, doc)
    }

    pub fn output(&mut self, name: &str, ty: Ty, doc: &str) -> Expr {
        assert!(name.ends_with("_o"), "output `{name}` must end in _o");
        self.add_port(name, Dir::Out, ty, doc)
    }

    /// A port of a vendor primitive's interface ([`Module::instance_with_params`] checks an
    /// instance against it), whose names are the vendor's, not ours (`PLLOUTGLOBAL`).
    pub fn primitive_port(&mut self, name: &str, dir: Dir, width: u32) {
        self.add_port(name, dir, Ty::u(width), "");
    }

    fn add_port(&mut self, name: &str, dir: Dir, ty: Ty, doc: &str) -> Expr {
        self.claim(name);
        self.ports.push(Port {
            name: name.into(),
            dir,
            ty,
            doc: doc.into(),
        });
        Expr::net(name, ty)
    }

    /// Drives an output port.
    pub fn assign(&mut self, port: &Expr, expr: Expr) {
        let name = match &port.node {
            super::expr::Node::Net(n) => n.clone(),
            _ => panic!("assign target must be a port"),
        };
        let p = self
            .ports
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("module {}: no port `{name}`", self.name));
        assert_eq!(p.dir, Dir::Out, "assign to input `{name}`");
        assert_eq!(
            p.ty.width,
            expr.width(),
            "module {}: output `{name}` is {} but driven by {}",
            self.name,
            p.ty,
            expr.ty
        );
        self.items.push(Item::Assign { port: name, expr });
    }

    pub fn comment(&mut self, text: &str) {
        self.items.push(Item::Comment(text.into()));
    }

    /// Binds `expr` to a named wire and returns a reference to it (typed like `expr`).
    pub fn wire(&mut self, name: &str, expr: Expr, doc: &str) -> Expr {
        self.claim(name);
        let ty = expr.ty;
        self.items.push(Item::Wire {
            name: name.into(),
            ty,
            expr,
            doc: doc.into(),
        });
        Expr::net(name, ty)
    }

    /// Declares a register `base_q`; its next value is given later with [`Module::set_d`].
    /// Returns the `_q` net.
    pub fn reg(&mut self, base: &str, ty: Ty, reset: Reset, doc: &str) -> Expr {
        self.claim(&format!("{base}_q"));
        self.claim(&format!("{base}_d"));
        self.items.push(Item::Reg {
            base: base.into(),
            ty,
            reset,
            d: None,
            enable: None,
            doc: doc.into(),
            keep: false,
        });
        Expr::net(format!("{base}_q"), ty)
    }

    /// Sets the next value (and optional 1-bit enable) of register `q`.
    pub fn set_d(&mut self, q: &Expr, d: Expr, enable: Option<Expr>) {
        let (mname, qname, item) = self.reg_item(q, "set_d");
        if let Item::Reg {
            ty,
            d: dd,
            enable: en,
            ..
        } = item
        {
            assert_eq!(
                ty.width,
                d.width(),
                "module {mname}: register `{qname}` is {ty} but its next value is {}",
                d.ty
            );
            assert!(dd.is_none(), "register `{qname}` driven twice");
            if let Some(e) = &enable {
                assert_eq!(e.width(), 1, "enable of `{qname}` must be 1 bit");
            }
            *dd = Some(d);
            *en = enable;
        }
    }

    /// Marks register `q` to be kept apart from identical registers: Yosys merges
    /// flip-flops with the same inputs across a flattened design (`opt_merge`), which turns one
    /// register per lane into one register driving every lane; a `(* keep *)` process is not
    /// merged, so each copy stays next to what it drives.
    pub fn keep_apart(&mut self, q: &Expr) {
        let (_, _, item) = self.reg_item(q, "keep_apart");
        if let Item::Reg { keep, .. } = item {
            *keep = true;
        }
    }

    /// The declaration of register `q` (a `_q` net), with the module's and the register's names
    /// for messages; panics naming `what` when `q` is not a register of this module.
    fn reg_item(&mut self, q: &Expr, what: &str) -> (String, String, &mut Item) {
        let qname = match &q.node {
            super::expr::Node::Net(n) => n.clone(),
            _ => panic!("{what} target must be a register"),
        };
        let base = qname
            .strip_suffix("_q")
            .expect("register names end in _q")
            .to_string();
        let mname = self.name.clone();
        let item = self
            .items
            .iter_mut()
            .find(|i| matches!(i, Item::Reg { base: b, .. } if *b == base))
            .unwrap_or_else(|| panic!("module {mname}: no register `{qname}`"));
        (mname, qname, item)
    }

    /// A register with its next value in one step (when `d` does not depend on `q`).
    pub fn reg_next(
        &mut self,
        base: &str,
        d: Expr,
        enable: Option<Expr>,
        reset: Reset,
        doc: &str,
    ) -> Expr {
        let q = self.reg(base, d.ty, reset, doc);
        self.set_d(&q, d, enable);
        q.as_signed_if(q.ty.signed)
    }

    /// A 1W1R synchronous-read memory; returns the registered read data (`name_rdata_q`).
    #[allow(clippy::too_many_arguments)]
    pub fn mem(
        &mut self,
        name: &str,
        width: u32,
        depth: u32,
        we: Expr,
        waddr: Expr,
        wdata: Expr,
        raddr: Expr,
    ) -> Expr {
        assert_eq!(we.width(), 1);
        assert_eq!(wdata.width(), width, "memory {name}: write data width");
        assert_eq!(
            waddr.width(),
            raddr.width(),
            "memory {name}: address widths"
        );
        assert!(
            u64::from(depth) <= 1u64 << waddr.width(),
            "memory {name}: depth {depth} needs more than {} address bits",
            waddr.width()
        );
        self.claim(&format!("{name}_q"));
        let rdata = format!("{name}_rdata_q");
        self.claim(&rdata);
        self.items.push(Item::Mem {
            name: name.into(),
            width,
            depth,
            we,
            waddr,
            wdata,
            raddr,
            rdata: rdata.clone(),
            single_port: false,
        });
        Expr::net(rdata, Ty::u(width))
    }

    /// A single-port synchronous memory: one address, `we ? waddr : raddr`; a write cycle does
    /// not read (the read data keeps its value). Only correct where reads and writes never need
    /// the same cycle.
    #[allow(clippy::too_many_arguments)]
    pub fn mem_single_port(
        &mut self,
        name: &str,
        width: u32,
        depth: u32,
        we: Expr,
        waddr: Expr,
        wdata: Expr,
        raddr: Expr,
    ) -> Expr {
        let addr = self.wire(
            &format!("{name}_addr"),
            Expr::mux(we.clone(), waddr, raddr),
            "the one address: the write's while writing",
        );
        let rdata = self.mem(name, width, depth, we, addr.clone(), wdata, addr);
        if let Some(Item::Mem { single_port, .. }) = self.items.last_mut() {
            *single_port = true;
        }
        rdata
    }

    /// Instantiates `m`, connecting every port by name. Outputs must be connected to nets (or
    /// slices of nets) of the same width (use [`Module::out_wire`] to declare them).
    pub fn instance(&mut self, m: &Module, name: &str, conns: Vec<(&str, Expr)>) {
        self.instance_with_params(m, name, Vec::new(), conns);
    }

    /// [`Module::instance`] with parameter overrides `(name, Verilog constant)`, for vendor
    /// primitives (`m` then only lists the ports connected).
    pub fn instance_with_params(
        &mut self,
        m: &Module,
        name: &str,
        params: Vec<(&str, String)>,
        conns: Vec<(&str, Expr)>,
    ) {
        self.claim(name);
        for p in &m.ports {
            let c = conns.iter().find(|(n, _)| *n == p.name).unwrap_or_else(|| {
                panic!(
                    "instance {name} of {}: port `{}` unconnected",
                    m.name, p.name
                )
            });
            assert_eq!(
                c.1.width(),
                p.ty.width,
                "instance {name} of {}: port `{}` is {} but connected to {}",
                m.name,
                p.name,
                p.ty,
                c.1.ty
            );
            if p.dir == Dir::Out {
                assert!(
                    matches!(
                        c.1.node,
                        super::expr::Node::Net(_) | super::expr::Node::Slice(..)
                    ),
                    "instance {name}: output `{}` must connect to a net or a slice of one",
                    p.name
                );
            }
        }
        for (n, _) in &conns {
            assert!(
                m.ports.iter().any(|p| p.name == *n),
                "instance {name} of {}: no port `{n}`",
                m.name
            );
        }
        self.items.push(Item::Instance {
            module: m.name.clone(),
            name: name.into(),
            params: params
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
            conns: conns.into_iter().map(|(n, e)| (n.to_string(), e)).collect(),
        });
    }

    /// Declares a wire driven by an instance output.
    pub fn out_wire(&mut self, name: &str, ty: Ty, doc: &str) -> Expr {
        self.claim(name);
        self.items.push(Item::Decl {
            name: name.into(),
            ty,
            doc: doc.into(),
        });
        Expr::net(name, ty)
    }

    /// Marks bits as deliberately unused (lowRISC style `unused_*` sink, which Verilator's
    /// UNUSED lint accepts by name).
    pub fn unused(&mut self, e: Expr, why: &str) {
        self.unused += 1;
        let name = format!("unused_{}", self.unused);
        self.claim(&name);
        self.items.push(Item::Wire {
            name,
            ty: Ty::u(1),
            expr: e.reduce(super::expr::RedOp::Xor),
            doc: why.into(),
        });
    }

    /// Looks up a port by name.
    pub fn port(&self, name: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.name == name)
    }
}

impl Expr {
    fn as_signed_if(&self, s: bool) -> Expr {
        if s {
            self.as_signed()
        } else {
            self.clone()
        }
    }
}
