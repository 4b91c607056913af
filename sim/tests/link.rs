//! The board link end to end in simulation: the host driver (`link`) talking to the generated
//! `sd_board_top` in Verilator through its UART pins, bit by bit (`smartdeal_sim::board`).
//!
//! * the device's UART output, decoded bit by bit, has exact 8N1 timing and answers IDENTIFY
//!   with the generator's identify payload;
//! * malformed frames (bad checksum, unknown command, over-long or wrong length, a framing
//!   error, a truncated frame followed by silence, a READ outside the buffer) get a NAK with the
//!   right error code, execute nothing, and the next valid request succeeds;
//! * random small layers give the golden model's outputs bit for bit (proptest, few cases:
//!   `SMARTDEAL_LINK_CASES`, seed `SMARTDEAL_TEST_SEED`).
//!
//! * the generated UART receiver and transmitter, in an echo top of their own, at the minimum
//!   and other clocks per bit, with ±3 % baud error, a glitch and a break.
//! * the same echo at each board's `--baud max`, the host's bits timed at the FTDI bridge's
//!   exact rate (a fractional number of device clocks).
//!
//! All the link tests share one verilated design (tiny preset, 8 clocks per bit), built once and cached.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use smartdeal_core::protocol::{self as proto, cmd, err};
use smartdeal_core::protocol::{identify_payload, BoardLink};
use smartdeal_core::random::RandomLayerSpec;
use smartdeal_core::AccelConfig;
use smartdeal_gen::hw::{uart_rx, uart_tx};
use smartdeal_gen::ir::{emit, Expr, Module, Ty};
use smartdeal_golden as golden;
use smartdeal_golden::strategies::{test_seed, LayerCase, OutMode};
use smartdeal_host::link::{
    encode_request, read_reply, resync, Board, Cmd, LinkOptions, Reply, Status, Transport,
};
use smartdeal_sim::board::{SimBoard, UartDecoder};
use smartdeal_sim::bridge::{self, BuildSpec, PortSpec, Sim};
use std::time::Instant;

fn tiny() -> AccelConfig {
    AccelConfig::preset("tiny").unwrap()
}

fn board() -> (SimBoard, LinkOptions) {
    let link = BoardLink::simulation();
    let b = SimBoard::new(&tiny(), &link).expect("build the simulated board");
    (b, LinkOptions::for_link(&link))
}

/// Sends raw bytes and reads one reply (no retries).
fn raw(b: &mut SimBoard, o: &LinkOptions, bytes: &[u8], expect: usize) -> Reply {
    b.send(bytes).unwrap();
    read_reply(b, o, expect).expect("a reply")
}

fn status(b: &mut SimBoard, o: &LinkOptions) -> Status {
    let r = raw(b, o, &encode_request(cmd::STATUS, &[]), 7);
    assert_eq!(r.rsp, cmd::STATUS | 0x80);
    r.status().unwrap()
}

#[test]
fn uart_bit_timing_and_identify() {
    let (mut b, o) = board();
    let cpb = b.clks_per_bit() as usize;
    b.capture_tx(true);
    let r = raw(&mut b, &o, &encode_request(cmd::IDENTIFY, &[]), 31);
    // The decoder has the last byte at the middle of its stop bit: capture the rest of it.
    b.idle(2 * cpb as u64);
    let wave = b.capture_tx(false).unwrap();
    assert_eq!(r.rsp, cmd::IDENTIFY | 0x80);
    assert_eq!(r.payload, identify_payload(&tiny(), b.link()));
    assert_eq!(b.framing_errors(), 0);

    // Decode the captured line independently with exact bit boundaries: each start, data and
    // stop bit lasts cpb clocks, the line is constant inside a bit, and the stop bit (plus
    // any gap) is high.
    let mut frame = Vec::new();
    let mut i = 0;
    while let Some(p) = wave[i..].iter().position(|&l| !l) {
        let s = i + p;
        let bit = |k: usize| {
            let cells = &wave[s + k * cpb..s + (k + 1) * cpb];
            assert!(
                cells.iter().all(|&c| c == cells[0]),
                "byte {} bit {k}: the line changes inside the bit",
                frame.len()
            );
            cells[0]
        };
        assert!(!bit(0), "start bit");
        let byte = (1..=8).fold(0u8, |acc, k| acc | (u8::from(bit(k)) << (k - 1)));
        assert!(bit(9), "stop bit of byte {}", frame.len());
        frame.push(byte);
        i = s + 10 * cpb;
    }
    let mut want = vec![proto::SYNC_RSP, r.rsp, 0, 31];
    want.extend_from_slice(&r.payload);
    want.push(proto::crc8(&want[1..]));
    assert_eq!(frame, want);

    // Back-to-back requests through the driver, and the connection check.
    let mut board = Board::connect(b, &tiny(), o).expect("connect");
    assert_eq!(board.info().max_cmds, 36);
    let s = board.status().unwrap();
    assert!(!s.busy && !s.done && !s.err);
    assert_eq!((s.last_err, s.err_count), (err::NONE, 0));
    let mut other = tiny();
    other.out_depth = 128;
    let e = Board::connect(
        board.into_transport(),
        &other,
        LinkOptions::for_link(&BoardLink::simulation()),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("out_depth: device 256, config 128"), "{e}");
}

/// Checks that a malformed frame gets a NAK with `code`, then that STATUS works and reports it.
fn expect_nak(b: &mut SimBoard, o: &LinkOptions, what: &str, bytes: &[u8], code: u8, count: u8) {
    b.send(bytes).unwrap();
    let r = read_reply(b, o, 7).unwrap_or_else(|e| panic!("{what}: no NAK: {e}"));
    assert_eq!(r.rsp, proto::RSP_NAK, "{what}");
    let s = r.status().unwrap();
    assert_eq!(s.last_err, code, "{what}: {}", err::name(s.last_err));
    assert_eq!(s.err_count, count, "{what}");
    // The rest of the malformed frame (if any) and any stray reply are discarded by the
    // host's resynchronization: silence longer than the device's timeout.
    resync(b, o).unwrap();
    let s = status(b, o);
    assert_eq!(
        (s.last_err, s.err_count),
        (code, count),
        "{what}: STATUS after"
    );
    assert!(!s.err, "{what}: nothing reached the accelerator");
}

#[test]
fn malformed_frames_get_an_error_and_the_next_command_succeeds() {
    let (mut b, o) = board();
    let start = Cmd {
        op: 7,
        addr: 0,
        data: 0,
    };
    // A WRITE with a bad checksum carrying START: must not reach the accelerator.
    let mut f = encode_request(cmd::WRITE, &start.bytes());
    *f.last_mut().unwrap() ^= 0x40;
    expect_nak(&mut b, &o, "bad checksum", &f, err::BAD_CRC, 1);
    let s = status(&mut b, &o);
    assert!(
        !s.done && !s.busy && s.cycles == 0,
        "the START was not executed: {s:?}"
    );

    expect_nak(
        &mut b,
        &o,
        "unknown command",
        &encode_request(0x42, &[1, 2, 3]),
        err::UNKNOWN_CMD,
        2,
    );
    // Over-long: rejected on the length bytes; the payload that follows is ignored.
    let mut f = vec![proto::SYNC_REQ, cmd::WRITE, 0xff, 0xf0];
    f.extend_from_slice(&[0x11; 20]);
    expect_nak(&mut b, &o, "over-long length", &f, err::BAD_LEN, 3);
    expect_nak(
        &mut b,
        &o,
        "WRITE not a multiple of 7",
        &encode_request(cmd::WRITE, &[1, 0, 0, 0, 0, 0]),
        err::BAD_LEN,
        4,
    );
    expect_nak(
        &mut b,
        &o,
        "STATUS with a payload",
        &encode_request(cmd::STATUS, &[0]),
        err::BAD_LEN,
        5,
    );
    expect_nak(
        &mut b,
        &o,
        "READ past the output buffer",
        &encode_request(cmd::READ, &[0, 250, 0, 7]),
        err::BAD_ARG,
        6,
    );
    // Truncated: 5 of 14 payload bytes, then silence past the timeout.
    let f = encode_request(cmd::WRITE, &[start.bytes(), start.bytes()].concat());
    let t0 = b.cycles();
    expect_nak(&mut b, &o, "truncated frame", &f[..9], err::TIMEOUT, 7);
    assert!(b.cycles() - t0 >= b.link().timeout_clks());
    // A bad stop bit inside a frame.
    let f = encode_request(cmd::READ, &[0, 0, 0, 4]);
    b.send(&f[..3]).unwrap();
    b.send_char(f[3], false);
    b.idle(20);
    expect_nak(&mut b, &o, "framing error", &f[4..], err::FRAMING, 8);

    // Commands tunnelled while the accelerator runs are dropped by it, and the WRITE's
    // acknowledgement says so (err); the next START clears it.
    let r = raw(
        &mut b,
        &o,
        &encode_request(
            cmd::WRITE,
            &[
                Cmd {
                    op: 7,
                    addr: 20,
                    data: 0,
                },
                Cmd {
                    op: 1,
                    addr: 0,
                    data: 1,
                },
            ]
            .iter()
            .flat_map(Cmd::bytes)
            .collect::<Vec<u8>>(),
        ),
        7,
    );
    assert_eq!(r.rsp, cmd::WRITE | 0x80);
    let s = r.status().unwrap();
    assert!(s.err && s.done && s.cycles > 0, "{s:?}");

    // And a real transaction still works: load a word, read the output buffer.
    let mut board = Board::connect(b, &tiny(), o).unwrap();
    board.run(0, false).unwrap();
    assert!(!board.wait_done().unwrap().err, "START cleared err");
    let s = board
        .write(&[Cmd {
            op: 1,
            addr: 0,
            data: 5,
        }])
        .unwrap();
    assert!(!s.err);
    assert_eq!(board.read(0, 4).unwrap().len(), 4);
    assert_eq!(board.stats().retries, 0);
    let b = board.into_transport();
    assert_eq!(b.leds() & 4, 4, "the link-error LED is on");
    assert_eq!(b.framing_errors(), 0);
}

fn cases() -> u32 {
    std::env::var("SMARTDEAL_LINK_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

/// Small random layers on the tiny preset (several tiles; sometimes several runs).
fn small_case() -> impl Strategy<Value = LayerCase> {
    let cfg = tiny();
    (
        1..=60u32,
        1..=20u32,
        prop_oneof![Just(0.0), Just(1.0), 0.0..=1.0f64],
        0.3..=1.0f64,
        any::<bool>(),
        any::<u64>(),
        prop_oneof![
            2 => Just(OutMode::Typical),
            1 => Just(OutMode::Extreme),
            1 => Just(OutMode::Identity)
        ],
        1..=2usize,
    )
        .prop_map(
            move |(inputs, outputs, rd, ed, relu, seed, out_mode, tokens)| {
                let mut spec = RandomLayerSpec::for_config(&cfg, inputs, outputs, rd, seed);
                spec.elem_density = ed;
                spec.relu = relu;
                spec.rows_per_block = inputs.div_ceil(3).clamp(1, 8);
                LayerCase {
                    spec,
                    out_mode,
                    tokens,
                    x_min_fraction: 0.1,
                }
            },
        )
}

#[test]
fn sim_board_matches_the_golden_model() {
    let cfg = tiny();
    let (b, o) = board();
    let board = std::cell::RefCell::new(Board::connect(b, &cfg, o).expect("connect"));
    let seed = test_seed();
    eprintln!("link proptest: seed {seed}, {} cases", cases());
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    });
    let t0 = Instant::now();
    let c0 = board.borrow_mut().transport_mut().cycles();
    runner
        .run(&small_case(), |case| {
            let (layer, x) = case.build(&cfg);
            let want = golden::run_layer(&cfg, &layer, &x);
            let got = board.borrow_mut().run_layer(&layer, &x);
            match got {
                Ok(y) if y == want => Ok(()),
                other => Err(TestCaseError::fail(format!(
                    "{}x{} x{}: sim-board {:?} != golden {want:?}",
                    layer.inputs,
                    layer.outputs,
                    case.tokens,
                    other.map_err(|e| e.to_string())
                ))),
            }
        })
        .unwrap();
    let board = board.into_inner();
    let st = board.stats().clone();
    let b = board.into_transport();
    let secs = t0.elapsed().as_secs_f64();
    let cycles = b.cycles() - c0;
    let bytes = st.bytes_sent + st.bytes_received;
    eprintln!(
        "link proptest: {} frames, {bytes} bytes, {} runs, {cycles} cycles in {secs:.1} s: \
         {:.0} bytes/s, {:.2} M cycles/s",
        st.frames,
        st.runs,
        bytes as f64 / secs,
        cycles as f64 / secs / 1e6
    );
    assert_eq!(st.retries, 0, "a clean link needs no retries");
    assert_eq!(b.framing_errors(), 0);
}

/// An echo top: sd_uart_rx's byte goes straight to sd_uart_tx; the receiver's outputs are
/// also pins, so they can be checked cycle by cycle.
struct Loop {
    sim: Sim,
    cpb: u32,
    idx: [usize; 6],
    dec: UartDecoder,
    got: Vec<u8>,
    ferrs: u32,
    echoed: Vec<u8>,
    /// The transmitter's line, one sample per clock.
    tx_line: Vec<bool>,
}

impl Loop {
    fn new(cpb: u32) -> Loop {
        let cfg = tiny();
        let link = BoardLink {
            clock_hz: cpb * 100_000,
            baud: 100_000,
            timeout_us: 1_000,
            led_active_low: 0,
            pll: None,
        };
        link.validate().unwrap();
        let rx = uart_rx::module(&cfg, &link);
        let tx = uart_tx::module(&cfg, &link);
        let mut m = Module::new("sd_uart_loop", "UART echo (test)", &link.config_line());
        m.clock_reset();
        let clk = Expr::net("clk_i", Ty::u(1));
        let rst = Expr::net("rst_ni", Ty::u(1));
        let line = m.input("rx_i", Ty::u(1), "");
        let tx_o = m.output("tx_o", Ty::u(1), "");
        let valid_o = m.output("valid_o", Ty::u(1), "");
        let data_o = m.output("data_o", Ty::u(8), "");
        let ferr_o = m.output("ferr_o", Ty::u(1), "");
        let v = m.out_wire("v", Ty::u(1), "");
        let d = m.out_wire("d", Ty::u(8), "");
        let f = m.out_wire("f", Ty::u(1), "");
        let ready = m.out_wire("ready", Ty::u(1), "");
        let t = m.out_wire("t", Ty::u(1), "");
        let conns_rx = vec![
            ("clk_i", clk.clone()),
            ("rst_ni", rst.clone()),
            ("rx_i", line),
            ("valid_o", v.clone()),
            ("data_o", d.clone()),
            ("ferr_o", f.clone()),
        ];
        m.instance(&rx, "u_rx", conns_rx);
        m.instance(
            &tx,
            "u_tx",
            vec![
                ("clk_i", clk),
                ("rst_ni", rst),
                ("valid_i", v.clone()),
                ("data_i", d.clone()),
                ("ready_o", ready.clone()),
                ("tx_o", t.clone()),
            ],
        );
        m.unused(ready, "the host leaves gaps, the echo never overruns");
        m.assign(&tx_o, t);
        m.assign(&valid_o, v);
        m.assign(&data_o, d);
        m.assign(&ferr_o, f);
        let dir = tempfile::tempdir().unwrap();
        let mut sources = Vec::new();
        for md in [&rx, &tx, &m] {
            let p = dir.path().join(format!("{}.v", md.name));
            std::fs::write(&p, emit::module(md, "link test")).unwrap();
            sources.push(p);
        }
        let ports = vec![
            PortSpec::input("clk_i", 1),
            PortSpec::input("rst_ni", 1),
            PortSpec::input("rx_i", 1),
            PortSpec::output("tx_o", 1),
            PortSpec::output("valid_o", 1),
            PortSpec::output("data_o", 8),
            PortSpec::output("ferr_o", 1),
        ];
        let spec = BuildSpec {
            top: "sd_uart_loop".into(),
            sources,
            ports,
            trace: false,
        };
        let mut sim = Sim::from_spec(&spec, &bridge::cache_root()).expect("verilate the echo");
        let idx = ["clk_i", "rx_i", "tx_o", "valid_o", "data_o", "ferr_o"]
            .map(|n| sim.port_index(n).unwrap());
        let rst = sim.port_index("rst_ni").unwrap();
        sim.set_idx(idx[1], 1);
        sim.set_idx(rst, 0);
        // Clock edges while in reset apply the reset values (the input starts at 0, so there
        // is no negedge to trigger them).
        for c in [0, 1, 0, 1, 0] {
            sim.set_idx(idx[0], c);
            sim.eval();
        }
        sim.set_idx(rst, 1);
        let mut l = Loop {
            sim,
            cpb,
            idx,
            dec: UartDecoder::new(cpb),
            got: Vec::new(),
            ferrs: 0,
            echoed: Vec::new(),
            tx_line: Vec::new(),
        };
        l.hold(true, 4);
        l
    }

    /// Holds the line at `level` for `clocks`, checking the receiver every clock.
    fn hold(&mut self, level: bool, clocks: u32) {
        self.sim.set_idx(self.idx[1], u64::from(level));
        for _ in 0..clocks {
            for c in [0, 1] {
                self.sim.set_idx(self.idx[0], c);
                self.sim.eval();
            }
            if self.sim.get_idx(self.idx[3]) != 0 {
                self.got.push(self.sim.get_idx(self.idx[4]) as u8);
            }
            self.ferrs += self.sim.get_idx(self.idx[5]) as u32;
            let tx = self.sim.get_idx(self.idx[2]) != 0;
            self.tx_line.push(tx);
            if let Some(Ok(b)) = self.dec.push(tx) {
                self.echoed.push(b);
            }
        }
    }

    /// One character with each bit `bit_clocks` long (≠ cpb: a baud error), then a 2-bit gap.
    fn char(&mut self, byte: u8, bit_clocks: u32) {
        self.hold(false, bit_clocks);
        for k in 0..8 {
            self.hold(byte >> k & 1 == 1, bit_clocks);
        }
        self.hold(true, bit_clocks + 2 * self.cpb);
    }
}

#[test]
fn uart_rx_tx_bit_level_loopback() {
    let all: Vec<u8> = (0..=255).collect();
    // The minimum clocks per bit, an odd one, and a slow one with ±3 % baud error.
    for (cpb, bit_clocks) in [(4, vec![4]), (7, vec![7]), (32, vec![32, 31, 33])] {
        let mut l = Loop::new(cpb);
        for &bc in &bit_clocks {
            l.got.clear();
            l.echoed.clear();
            for &b in &all {
                l.char(b, bc);
            }
            l.hold(true, 12 * cpb);
            assert_eq!(l.got, all, "cpb {cpb}, host bits of {bc} clocks: received");
            assert_eq!(l.echoed, all, "cpb {cpb}, host bits of {bc} clocks: echoed");
            assert_eq!(l.ferrs, 0, "cpb {cpb}");
        }
        // A glitch shorter than half a bit is not a start bit.
        l.got.clear();
        l.hold(false, cpb / 2 - 1);
        l.hold(true, 12 * cpb);
        assert!(l.got.is_empty() && l.ferrs == 0, "cpb {cpb}: glitch");
        // A break (line low for 3 characters) is one framing error, then bytes work again.
        l.hold(false, 30 * cpb);
        l.hold(true, 2 * cpb);
        assert_eq!((l.got.len(), l.ferrs), (0, 1), "cpb {cpb}: break");
        l.char(0x5A, cpb);
        l.hold(true, 2 * cpb);
        assert_eq!(l.got, [0x5A], "cpb {cpb}: after the break");
    }
}

/// The UART line of a host whose bit lasts `period` clocks (not a whole number: the bridge's
/// rate against the device clock): `byte` framed 8N1, each edge at the clock nearest its
/// ideal time, then a 2-bit gap.
fn host_char(l: &mut Loop, byte: u8, period: f64) {
    host_line(l, &[byte], period, 2);
}

/// `bytes` back to back on the host's line (bits of `period` clocks, each edge at the clock
/// nearest its ideal time), then `gap_bits` idle bits.
fn host_line(l: &mut Loop, bytes: &[u8], period: f64, gap_bits: u32) {
    let mut bits = Vec::new();
    for &byte in bytes {
        bits.push(false);
        bits.extend((0..8).map(|k| byte >> k & 1 == 1));
        bits.push(true);
    }
    bits.extend(std::iter::repeat_n(true, gap_bits as usize));
    let mut t = 0.0f64;
    for b in bits {
        let len = ((t + period).round() - t.round()) as u32;
        l.hold(b, len);
        t += period;
    }
}

/// Decodes an 8N1 line sampled once per clock by a receiver whose bit lasts `period` clocks:
/// each start edge, then every bit at its ideal middle. Errors on a bad stop bit.
fn decode_line(line: &[bool], period: f64) -> Result<Vec<u8>, usize> {
    let mut out = Vec::new();
    let mut i = 1;
    while i < line.len() {
        if line[i - 1] && !line[i] {
            let at = |k: f64| line.get((i as f64 + k * period).round() as usize).copied();
            let mut byte = 0u8;
            for k in 0..8 {
                byte |= u8::from(at(1.5 + f64::from(k)).unwrap_or(true)) << k;
            }
            if at(9.5) != Some(true) {
                return Err(i);
            }
            out.push(byte);
            i += (9.5 * period) as usize;
        }
        i += 1;
    }
    Ok(out)
}

/// The generated UART against the boards' USB bridges at `fpga build --baud max`: the host
/// side's bit time is the bridge's exact rate in device clocks (a fraction), the device's a
/// whole number of clocks, and all 256 byte values cross both ways.
#[test]
fn uart_at_the_fastest_clean_rate_of_each_board() {
    use smartdeal_gen::UsbUart;
    let all: Vec<u8> = (0..=255).collect();
    // The board clocks and PLL clocks of the README's tables.
    for (uart, clock_hz) in [
        (UsbUart::Ft2232h, 12_000_000),
        (UsbUart::Ft2232h, 16_500_000),
        (UsbUart::Ft231x, 25_000_000),
        (UsbUart::Ft231x, 40_000_000),
    ] {
        let c = uart.fastest_clean_baud(clock_hz).unwrap();
        let period = f64::from(clock_hz) / c.bridge_baud;
        let mut l = Loop::new(c.clks_per_bit);
        for &b in &all {
            host_char(&mut l, b, period);
        }
        l.hold(true, 12 * c.clks_per_bit);
        let what = format!("{uart:?} at {clock_hz} Hz, {c:?}");
        assert_eq!(l.got, all, "{what}: received");
        assert_eq!(l.ferrs, 0, "{what}");
        assert_eq!(
            decode_line(&l.tx_line, period),
            Ok(all.clone()),
            "{what}: echoed"
        );
        // A frame's bytes come back to back from the bridge; where the host is the faster side
        // the receiver must be ready for the next start bit in time. (The echo would overrun
        // here, the device sending slower than it receives, so only the receiver is checked.)
        l.got.clear();
        host_line(&mut l, &all, period, 12);
        assert_eq!(l.got, all, "{what}: received back to back");
        assert_eq!(l.ferrs, 0, "{what}: back to back");
    }
}

/// A transport that corrupts chosen bytes on their way to the device.
struct Flaky {
    inner: SimBoard,
    /// (frame number, byte index, xor mask) to corrupt.
    faults: Vec<(usize, usize, u8)>,
    frames: usize,
}

impl Transport for Flaky {
    fn send(&mut self, bytes: &[u8]) -> Result<(), smartdeal_host::link::TransportError> {
        let mut v = bytes.to_vec();
        for &(f, i, x) in &self.faults {
            if f == self.frames && i < v.len() {
                v[i] ^= x;
            }
        }
        self.frames += 1;
        self.inner.send(&v)
    }
    fn recv(
        &mut self,
        n: usize,
        timeout: std::time::Duration,
    ) -> Result<Vec<u8>, smartdeal_host::link::TransportError> {
        self.inner.recv(n, timeout)
    }
}

/// The driver's retries against the RTL: a corrupted payload byte (NAK bad CRC), a corrupted
/// sync byte (no reply at all: the device ignores the frame) and a corrupted length (too
/// long: NAK, then the rest is hunted through) are each resent and succeed.
#[test]
fn driver_retries_corrupted_frames() {
    let (b, o) = board();
    let cfg = tiny();
    let flaky = Flaky {
        inner: b,
        // Frame 0 is IDENTIFY; frames 1.. are the WRITEs and READs below.
        faults: vec![(1, 6, 0x10), (3, 0, 0xff), (5, 2, 0x80)],
        frames: 0,
    };
    let mut board = Board::connect(flaky, &cfg, o).unwrap();
    let word = [Cmd {
        op: 1,
        addr: 0,
        data: 0x1234_5678,
    }];
    assert!(!board.write(&word).unwrap().err); // frames 1 (bad CRC) and 2
    assert!(!board.write(&word).unwrap().err); // frames 3 (no sync) and 4
    assert_eq!(board.read(0, 8).unwrap().len(), 8); // frames 5 (over-long) and 6
    assert_eq!(board.stats().retries, 3);
    let s = board.status().unwrap();
    assert_eq!(
        s.err_count, 2,
        "the CRC and length errors were counted: {s:?}"
    );
}

/// The dense int8 baseline behind the same board top: IDENTIFY reports its weight format, a host
/// configured for the SmartDeal accelerator is refused with that field named, and the host's
/// decompressed int8 weights give the naive model's outputs through the UART.
#[test]
fn dense_baseline_board_identifies_itself_and_matches_the_naive_model() {
    use smartdeal_core::random::{random_activations, random_layer};
    use smartdeal_core::WeightFormat;
    let dense = tiny().dense_baseline();
    let link = BoardLink::simulation();
    let b = SimBoard::new(&dense, &link).expect("build the dense board");
    let o = LinkOptions::for_link(&link);
    let err = match Board::connect(b, &tiny(), o.clone()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a SmartDeal host config was accepted by the dense board"),
    };
    assert!(err.contains("weight_format"), "{err}");
    let b = SimBoard::new(&dense, &link).expect("build the dense board");
    let mut board = Board::connect(b, &dense, o).expect("connect");
    assert_eq!(board.info().weight_format, WeightFormat::Dense);
    for seed in 0..4u64 {
        let (inputs, outputs) = (10 + 13 * seed as u32, 3 + 5 * seed as u32);
        let spec = RandomLayerSpec::for_config(&dense, inputs, outputs, 0.5, seed);
        let layer = random_layer(&spec);
        let x = random_activations(dense.act_bits, 2, inputs as usize, seed);
        let want = smartdeal_golden::naive::run_layer(&dense, &layer, &x);
        assert_eq!(
            board.run_layer(&layer, &x).expect("run"),
            want,
            "seed {seed}"
        );
    }
}

/// `led_active_low` inverts exactly the named LED pins (the iCEBreaker's red and green LEDs are
/// lit by a low pin): after a run, busy (bit 0) is 0 and done (bit 1) is 1 as signals, so the
/// inverted pins read 1 and 0, and the active-high link-error and frame LEDs are unchanged.
#[test]
fn active_low_leds_are_inverted_on_the_pins() {
    use smartdeal_core::random::{random_activations, random_layer};
    let cfg = tiny();
    let link = BoardLink {
        led_active_low: 0b0011,
        ..BoardLink::simulation()
    };
    let b = SimBoard::new(&cfg, &link).expect("build the board");
    let mut board = Board::connect(b, &cfg, LinkOptions::for_link(&link)).expect("connect");
    let layer = random_layer(&RandomLayerSpec::for_config(&cfg, 12, 4, 1.0, 3));
    let x = random_activations(cfg.act_bits, 1, 12, 3);
    assert_eq!(
        board.run_layer(&layer, &x).unwrap(),
        golden::run_layer(&cfg, &layer, &x)
    );
    let mut b = board.into_transport();
    b.idle(64);
    assert_eq!(
        b.leds() & 0b0111,
        0b0001,
        "busy pin high (off), done pin low (lit), no error"
    );
}

/// Input tiling over the link: a layer of 800 inputs (267 Ce rows, more than tiny's 256) runs in
/// two chunk runs per output tile, the driver reloading each chunk's activations, and equals the
/// golden model.
#[test]
fn sim_board_runs_an_input_tiled_layer() {
    use smartdeal_core::random::{random_activations, random_layer};
    let cfg = tiny();
    let (b, o) = board();
    let mut board = Board::connect(b, &cfg, o).expect("connect");
    let layer = random_layer(&RandomLayerSpec::for_config(&cfg, 800, 6, 0.6, 9));
    assert!(layer.rows() > cfg.act_depth as usize);
    let x = random_activations(cfg.act_bits, 1, 800, 9);
    assert_eq!(
        board.run_layer(&layer, &x).expect("run"),
        golden::run_layer(&cfg, &layer, &x)
    );
    // 2 tiles × 2 chunks.
    assert_eq!(board.stats().runs, 4);
}

/// The board top behind a PLL (`sd_board_top` = PLL primitive + `sd_board_core`), with the
/// primitive's simulation model, for both families: the core leaves reset only after the
/// model's LOCK, the UART divisor is the PLL clock's, and a layer equals the golden model.
#[test]
fn sim_board_behind_a_pll_runs_a_layer() {
    use smartdeal_core::random::{random_activations, random_layer};
    use smartdeal_gen::pll::{Pll, PllFamily};
    let cfg = tiny();
    for (family, board_hz, want_hz) in [
        (PllFamily::Ice40, 12_000_000, 16_500_000),
        (PllFamily::Ecp5, 25_000_000, 40_000_000),
    ] {
        let pll = Pll::plan(family, board_hz, want_hz).unwrap();
        // 8 core clocks per bit, as the other link tests, at the PLL's clock.
        let link = BoardLink {
            baud: pll.out_hz() / 8,
            timeout_us: 400,
            ..BoardLink::uart_with_pll(pll)
        };
        link.validate().unwrap();
        assert_eq!(link.clks_per_bit(), 8);
        let b = SimBoard::new(&cfg, &link).expect("build the board");
        let mut board = Board::connect(b, &cfg, LinkOptions::for_link(&link)).expect("connect");
        let layer = random_layer(&RandomLayerSpec::for_config(&cfg, 40, 8, 0.5, 5));
        let x = random_activations(cfg.act_bits, 2, 40, 5);
        assert_eq!(
            board.run_layer(&layer, &x).expect("run"),
            golden::run_layer(&cfg, &layer, &x),
            "{}",
            pll.config_line()
        );
    }
}

/// `extra_stages` (the ECP5 presets' extra registers) makes the output buffer's read data a
/// cycle later, and the board link waits for it: the sim board of `tiny` with them runs a layer
/// and reads back what the golden model computes.
#[test]
fn sim_board_with_extra_stages_reads_the_outputs_back() {
    let mut cfg = tiny();
    cfg.name = "tiny-extra".into();
    cfg.extra_stages = true;
    let link = BoardLink::simulation();
    let b = SimBoard::new(&cfg, &link).expect("build the simulated board");
    let board = std::cell::RefCell::new(
        Board::connect(b, &cfg, LinkOptions::for_link(&link)).expect("connect"),
    );
    let mut runner = TestRunner::new(Config {
        cases: 4,
        rng_seed: RngSeed::Fixed(test_seed()),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&small_case(), |case| {
            let (layer, x) = case.build(&cfg);
            let want = golden::run_layer(&cfg, &layer, &x);
            let got = board
                .borrow_mut()
                .run_layer(&layer, &x)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            if got == want {
                Ok(())
            } else {
                Err(TestCaseError::fail(format!(
                    "sim-board {got:?} != golden {want:?}"
                )))
            }
        })
        .unwrap();
}
