//! `smartdeal run --engine board` over a real serial-port stack without hardware: the binary
//! opens the slave side of a pseudo-terminal pair; behind the master side sits either the
//! simulated board (`SimBoard`: the board top in Verilator, bytes in and out through its UART
//! pins bit by bit) or a scripted fake device.

use smartdeal_core::protocol::identify_payload;
use smartdeal_core::protocol::{self as proto, cmd};
use smartdeal_core::AccelConfig;
use smartdeal_gen::BoardLink;
use smartdeal_host::link::{encode_reply, encode_request, Transport, TransportError};
use smartdeal_host::serial::serialport::{SerialPort, TTYPort};
use smartdeal_sim::board::SimBoard;
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;

use common::{fails, make_layer, ok, s, smartdeal, write_npy};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A seeded random `inputs`→`outputs` layer and `tokens` tokens of activations in `d`; returns
/// the paths of the model and of the input.
fn layer_and_input(d: &Path, inputs: u32, outputs: u32, tokens: u32) -> (String, String) {
    let model = make_layer(
        d,
        "l.sdm",
        &[
            "--inputs",
            &inputs.to_string(),
            "--outputs",
            &outputs.to_string(),
            "--row-density",
            "0.5",
            "--seed",
            "11",
        ],
    );
    let n = inputs * tokens;
    let x: Vec<i8> = (0..n).map(|i| ((i * 53 + 7) % 256) as u8 as i8).collect();
    let xp = d.join("x.npy");
    write_npy(&xp, &[u64::from(tokens), u64::from(inputs)], &x);
    (s(&model), s(&xp))
}

/// A device behind the master side of a pseudo-terminal pair, served by a thread until drop.
/// The slave side stays open here too, so the master never sees a hang-up between openers.
struct PtyDevice {
    slave: TTYPort,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PtyDevice {
    /// `serve(master, stop)` runs in a thread until `stop` is set.
    fn new<F>(serve: F) -> PtyDevice
    where
        F: FnOnce(TTYPort, Arc<AtomicBool>) + Send + 'static,
    {
        let (master, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = Some(std::thread::spawn(move || serve(master, st)));
        PtyDevice {
            slave,
            stop,
            thread,
        }
    }

    /// The path the binary opens (`--port`).
    fn path(&self) -> String {
        self.slave.name().expect("the slave pty's path")
    }
}

impl Drop for PtyDevice {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                r.expect("the device thread");
            }
        }
    }
}

/// Reads what the host sent, waiting at most `wait`; an empty result means nothing came.
fn read_some(master: &mut TTYPort, wait: Duration) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    master.set_timeout(wait).unwrap();
    match master.read(&mut buf) {
        Ok(k) => buf[..k].to_vec(),
        Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => Vec::new(),
        // No slave opener between runs, or an interrupted poll: nothing to read.
        Err(_) => {
            std::thread::sleep(wait.max(Duration::from_millis(1)));
            Vec::new()
        }
    }
}

/// Serves the simulated board on `master`: host bytes go into its UART receiver as they
/// arrive, and every loop simulates 500 µs of board time (500 clocks of
/// `BoardLink::simulation()`), forwarding what its UART sent. While the board is busy or
/// talking the loop does not wait for input, so the simulation outpaces a 115200-baud wire;
/// when idle it still advances, so the device's inter-byte timeout works as on a board.
fn serve_sim_board(mut board: SimBoard, mut master: TTYPort, stop: Arc<AtomicBool>) {
    let mut active = false;
    while !stop.load(Ordering::Relaxed) {
        let wait = if active {
            Duration::ZERO
        } else {
            Duration::from_millis(1)
        };
        let input = read_some(&mut master, wait);
        board
            .send(&input)
            .expect("the simulated UART takes every byte");
        let out = match board.recv(usize::MAX, Duration::from_micros(500)) {
            Ok(b) => b,
            Err(TransportError::Timeout { got, .. }) => got,
            Err(e) => panic!("simulated board: {e}"),
        };
        if !out.is_empty() {
            master.set_timeout(Duration::from_secs(2)).unwrap();
            master.write_all(&out).expect("write to the pty master");
        }
        // LEDs: bit 0 busy, bit 3 a frame is being handled.
        active = !input.is_empty() || !out.is_empty() || board.leds() & 0b1001 != 0;
    }
}

/// A scripted device: answers every IDENTIFY request with `reply`, ignores everything else.
fn serve_identify(reply: Vec<u8>, mut master: TTYPort, stop: Arc<AtomicBool>) {
    let request = encode_request(cmd::IDENTIFY, &[]);
    let mut seen = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        seen.extend(read_some(&mut master, Duration::from_millis(2)));
        while let Some(at) = seen.windows(request.len()).position(|w| w == request) {
            seen.drain(..at + request.len());
            master.set_timeout(Duration::from_secs(2)).unwrap();
            master.write_all(&reply).expect("write to the pty master");
        }
    }
}

fn tiny() -> AccelConfig {
    AccelConfig::preset("tiny").unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// The real binary drives the simulated board through the pty (serial port crate, termios, the
/// kernel's tty layer) and writes the same y.npy, byte for byte, as the golden model: a 96→40
/// layer on three tokens (ten tiles on `tiny`, full 36-command WRITE frames).
#[test]
fn board_engine_over_a_pty_equals_golden() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (model, x) = layer_and_input(d, 96, 40, 3);
    let board = SimBoard::new(&tiny(), &BoardLink::simulation())
        .expect("build the simulated board (needs verilator from scripts/setup.sh)");
    let dev = PtyDevice::new(move |m, st| serve_sim_board(board, m, st));
    let port = dev.path();
    let run = |engine: &str, extra: &[&str]| {
        let y = d.join(format!("y-{engine}.npy"));
        let mut args = vec![
            "run", "--engine", engine, "--model", &model, "--input", &x, "--out",
        ];
        let ys = s(&y);
        args.push(&ys);
        args.extend_from_slice(extra);
        let t0 = Instant::now();
        let summary = ok(&args, d);
        (summary, std::fs::read(&y).unwrap(), t0.elapsed())
    };
    let (_, golden, _) = run("golden", &[]);
    // The host times its replies by the baud rate, and a pty does not slow the bytes down, so
    // the simulated board must keep pace with the wire in real time. It does at 115200 baud on an
    // idle machine (about 2 M simulated clocks per second, 80 per byte), but not always on a busy
    // one; 9600 baud gives it twelve times the time per byte and costs nothing here, since the
    // host waits for replies, not for timeouts.
    let (summary, board_y, took) = run("board", &["--port", &port, "--baud", "9600"]);
    assert!(summary.starts_with("board: "), "{summary}");
    assert!(
        summary.contains("link:") && summary.contains("frames"),
        "{summary}"
    );
    eprintln!("{summary}");
    assert_eq!(golden, board_y, "golden and board y.npy differ");
    assert!(
        took < Duration::from_secs(40),
        "the board run took {took:?}"
    );
    // --build: the configuration and baud rate come from the `fpga build` folder of the
    // bitstream (here the generated files of a 12 MHz `tiny` board at 9600 baud, as `fpga
    // build --baud 9600` writes them into DIR/rtl).
    let build = d.join("build");
    let link = BoardLink {
        baud: 9600,
        ..BoardLink::uart(12_000_000)
    };
    smartdeal_gen::generate_board(&tiny(), &link, &smartdeal_gen::GenOptions::default())
        .unwrap()
        .write(&build.join("rtl"))
        .unwrap();
    let y = s(&d.join("y-build.npy"));
    let out = smartdeal(
        &[
            "run",
            "--engine",
            "board",
            "--port",
            &port,
            "--build",
            &s(&build),
            "--model",
            &model,
            "--input",
            &x,
            "--out",
            &y,
        ],
        d,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("config `tiny`, 9600 baud"), "{stderr}");
    assert_eq!(
        golden,
        std::fs::read(&y).unwrap(),
        "golden and --build y.npy differ"
    );
}

/// A device built for another configuration: one line naming the fields that differ.
#[test]
fn board_engine_names_the_fields_of_a_config_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (model, x) = layer_and_input(d, 40, 12, 2);
    let ice = AccelConfig::preset("icebreaker").unwrap();
    let reply = encode_reply(
        cmd::IDENTIFY | proto::RSP_OK_BIT,
        &identify_payload(&ice, &BoardLink::uart(12_000_000)),
    );
    let dev = PtyDevice::new(move |m, st| serve_identify(reply, m, st));
    let port = dev.path();
    let y = s(&d.join("y.npy"));
    let args = [
        "run", "--engine", "board", "--port", &port, "--model", &model, "--input", &x, "--out", &y,
    ];
    let line = fails(
        &args,
        d,
        &[
            &port,
            "different accelerator configuration",
            "lanes: device 1, config 4",
        ],
    );
    assert!(!d.join("y.npy").exists(), "{line}");
}

/// A device speaking another protocol version: said as such, whatever the rest of its answer.
#[test]
fn board_engine_reports_another_protocol_version() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (model, x) = layer_and_input(d, 40, 12, 2);
    let mut payload = identify_payload(&tiny(), &BoardLink::uart(12_000_000));
    payload[2] = proto::VERSION + 1;
    let reply = encode_reply(cmd::IDENTIFY | proto::RSP_OK_BIT, &payload);
    let dev = PtyDevice::new(move |m, st| serve_identify(reply, m, st));
    let port = dev.path();
    let y = s(&d.join("y.npy"));
    let args = [
        "run", "--engine", "board", "--port", &port, "--model", &model, "--input", &x, "--out", &y,
    ];
    let v = format!("protocol version {}", proto::VERSION + 1);
    fails(&args, d, &[&port, &v, "this host speaks version 1"]);
}

/// No device: a missing path or a file that is not a terminal is a one-line error naming it,
/// at once.
#[test]
fn board_engine_without_a_device_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (model, x) = layer_and_input(d, 40, 12, 2);
    let y = s(&d.join("y.npy"));
    let plain = s(&d.join("x.npy"));
    for (port, needle) in [
        ("/dev/nonexistent", "does not exist"),
        (plain.as_str(), "is not a serial port"),
        ("/dev/null", "is not a serial port"),
    ] {
        let args = [
            "run", "--engine", "board", "--port", port, "--model", &model, "--input", &x, "--out",
            &y,
        ];
        let t0 = Instant::now();
        fails(&args, d, &[port, needle]);
        assert!(t0.elapsed() < Duration::from_secs(5), "{port}");
    }
    fails(
        &[
            "run", "--engine", "board", "--model", &model, "--input", &x, "--out", &y,
        ],
        d,
        &["--port"],
    );
    fails(
        &[
            "run",
            "--engine",
            "golden",
            "--port",
            "/dev/null",
            "--model",
            &model,
            "--input",
            &x,
            "--out",
            &y,
        ],
        d,
        &["--engine board only"],
    );
    // --build: a folder that is not an `fpga build` output, and a second source of the config.
    let empty = s(d);
    for (extra, needles) in [
        (&[][..], &["--build", "params.json", "fpga build"][..]),
        (&["--preset", "tiny"][..], &["--build", "--preset"][..]),
    ] {
        let mut args = vec![
            "run",
            "--engine",
            "board",
            "--port",
            "/dev/null",
            "--build",
            &empty,
            "--model",
            &model,
            "--input",
            &x,
            "--out",
            &y,
        ];
        args.extend(extra);
        fails(&args, d, needles);
    }
}

/// A terminal with nobody answering: bounded retries, then one line saying so, within seconds.
#[test]
fn board_engine_on_a_silent_port_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (model, x) = layer_and_input(d, 40, 12, 2);
    // Swallows the requests and never answers.
    let dev = PtyDevice::new(|mut m, st| {
        while !st.load(Ordering::Relaxed) {
            read_some(&mut m, Duration::from_millis(5));
        }
    });
    let port = dev.path();
    let y = s(&d.join("y.npy"));
    let args = [
        "run", "--engine", "board", "--port", &port, "--model", &model, "--input", &x, "--out", &y,
    ];
    let t0 = Instant::now();
    fails(
        &args,
        d,
        &[&port, "no SmartDeal board answers", "IDENTIFY", "timeout"],
    );
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "gave up after {took:?}");
}
