//! Host side of the board link (docs/protocol.md): frame encoding and decoding, the request
//! sequences, retries and timeouts, behind a byte [`Transport`] (a serial port on a real board,
//! `smartdeal_sim::SimBoard` in simulation).
//!
//! The accelerator is driven with the same host-interface command sequences as the Verilator
//! harness of `sd_top` (PUSH the chunks of a buffer word most significant first, then one WR_*;
//! START; read the outputs), tunnelled in WRITE frames. A WRITE frame always carries whole
//! buffer words, so resending it after a lost reply writes the same words again: retries are
//! idempotent.

use crate::plan::{self, Device, PlanError};
use smartdeal_core::image::{self, BandStart, RunImage, Word};
use smartdeal_core::protocol::{self as proto, cmd, err, flag, op, BoardLink};
use smartdeal_core::{AccelConfig, FcLayer, WeightFormat, WeightRequant};
use std::time::Duration;

/// A byte pipe to the device.
pub trait Transport {
    /// Sends all of `bytes`.
    fn send(&mut self, bytes: &[u8]) -> Result<(), TransportError>;
    /// Receives exactly `n` bytes within `timeout`, or fails with [`TransportError::Timeout`]
    /// (carrying what did arrive).
    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u8>, TransportError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("timed out after {timeout:?}: {} of {wanted} bytes received", got.len())]
    Timeout {
        timeout: Duration,
        wanted: usize,
        got: Vec<u8>,
    },
    #[error("{0}")]
    Io(String),
}

/// What went wrong talking to the board.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{request}: no valid reply after {attempts} attempts (last problem: {last})")]
    NoReply {
        request: &'static str,
        attempts: u32,
        last: String,
    },
    #[error("{request}: the device answered NAK {code} ({})", err::name(*code))]
    Nak { request: &'static str, code: u8 },
    #[error(
        "the device is not a SmartDeal link (IDENTIFY magic {found:02x?}, expected {:02x?})",
        proto::MAGIC
    )]
    NotSmartDeal { found: Vec<u8> },
    #[error(
        "the device speaks link protocol version {device}, this host speaks version {host}: \
         rebuild the bitstream or update the host tools"
    )]
    Version { device: u8, host: u8 },
    #[error(
        "the bitstream was built for a different accelerator configuration (device fingerprint \
         {device}, config `{name}` has {host}){details}: rebuild the bitstream for this config \
         or pass the config it was built with"
    )]
    ConfigMismatch {
        name: String,
        device: String,
        host: String,
        details: String,
    },
    #[error("{request}: malformed reply: {why}")]
    BadReply { request: &'static str, why: String },
    #[error("the accelerator did not finish after {polls} STATUS polls")]
    RunTimeout { polls: u32 },
    #[error("the accelerator flagged a command error (err_o) during {0}")]
    Device(String),
    #[error(transparent)]
    Layer(#[from] smartdeal_core::LayerError),
    #[error("{0}")]
    Input(String),
}

impl From<PlanError> for LinkError {
    fn from(e: PlanError) -> LinkError {
        match e {
            PlanError::Layer(e) => LinkError::Layer(e),
            PlanError::Input(why) => LinkError::Input(why),
        }
    }
}

/// One host-interface command of `sd_top` (docs/interface.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmd {
    pub op: u8,
    pub addr: u16,
    pub data: u32,
}

impl Cmd {
    /// The 7 payload bytes: op, addr (big-endian), data (big-endian).
    pub fn bytes(&self) -> [u8; 7] {
        let a = self.addr.to_be_bytes();
        let d = self.data.to_be_bytes();
        [self.op, a[0], a[1], d[0], d[1], d[2], d[3]]
    }
}

/// The commands that load one buffer word: its 32-bit chunks most significant first (PUSH),
/// then the write (exactly what `cosim` issues).
pub fn word_cmds(opcode: u32, addr: usize, w: &Word) -> Vec<Cmd> {
    let mut v: Vec<Cmd> = w
        .chunks
        .iter()
        .rev()
        .map(|&c| Cmd {
            op: op::PUSH as u8,
            addr: 0,
            data: c,
        })
        .collect();
    v.push(Cmd {
        op: opcode as u8,
        addr: addr as u16,
        data: 0,
    });
    v
}

/// The word groups that load one run's stream, basis, shifts and output parameters.
pub fn run_load_groups(cfg: &AccelConfig, run: &RunImage) -> Vec<Vec<Cmd>> {
    let mut g = Vec::new();
    g.extend(
        run.coef
            .iter()
            .enumerate()
            .map(|(i, w)| word_cmds(op::WR_COEF, i, w)),
    );
    g.extend(
        run.basis
            .iter()
            .enumerate()
            .map(|(i, w)| word_cmds(op::WR_B, i, w)),
    );
    if cfg.has_wshift() {
        g.extend(
            run.wshift
                .iter()
                .enumerate()
                .map(|(i, w)| word_cmds(op::WR_WSHIFT, i, w)),
        );
    }
    g.extend(
        run.oparam
            .iter()
            .enumerate()
            .map(|(i, w)| word_cmds(op::WR_OPARAM, i, w)),
    );
    g
}

/// A request frame: SYNC, CMD, LEN (BE 16), PAYLOAD, CRC-8 over CMD..PAYLOAD.
pub fn encode_request(command: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 1 << 16, "payload over 65535 bytes");
    let mut f = Vec::with_capacity(payload.len() + 5);
    f.push(proto::SYNC_REQ);
    f.push(command);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(payload);
    let crc = proto::crc8(&f[1..]);
    f.push(crc);
    f
}

/// A reply frame (what the device sends; used by tests and fake devices).
pub fn encode_reply(rsp: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = encode_request(rsp, payload);
    f[0] = proto::SYNC_RSP;
    f
}

/// The device status (STATUS payload; also in WRITE/RUN acknowledgements and NAKs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub busy: bool,
    pub done: bool,
    /// The accelerator dropped a command (err_o; cleared by START).
    pub err: bool,
    /// Most recent link error code (0: none since reset).
    pub last_err: u8,
    /// Link errors since reset (wraps at 256).
    pub err_count: u8,
    /// Cycles of the last run.
    pub cycles: u32,
}

impl Status {
    pub fn parse(p: &[u8]) -> Option<Status> {
        if p.len() != proto::STATUS_LEN {
            return None;
        }
        Some(Status {
            busy: p[0] & flag::BUSY != 0,
            done: p[0] & flag::DONE != 0,
            err: p[0] & flag::ERR != 0,
            last_err: p[1],
            err_count: p[2],
            cycles: u32::from_be_bytes([p[3], p[4], p[5], p[6]]),
        })
    }
}

/// What IDENTIFY reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub version: u8,
    pub fingerprint: u64,
    pub lanes: u32,
    pub act_bits: u32,
    pub basis_bits: u32,
    pub exp_bits: u32,
    pub acc_bits: u32,
    pub weight_requant: WeightRequant,
    /// SmartDeal or the dense int8 baseline.
    pub weight_format: WeightFormat,
    pub rows_per_block: u32,
    pub act_depth: u32,
    pub coef_depth: u32,
    pub b_depth: u32,
    pub out_depth: u32,
    /// Most commands per WRITE frame.
    pub max_cmds: u32,
    pub clks_per_bit: u32,
}

/// Length of a version-1 IDENTIFY payload.
pub const IDENTIFY_LEN: usize = 2 + 1 + 8 + 6 + 2 * 7;

impl DeviceInfo {
    /// Nothing known yet (before IDENTIFY).
    fn unknown() -> DeviceInfo {
        DeviceInfo {
            version: 0,
            fingerprint: 0,
            lanes: 0,
            act_bits: 0,
            basis_bits: 0,
            exp_bits: 0,
            acc_bits: 0,
            weight_requant: WeightRequant::Int8,
            weight_format: WeightFormat::Smartdeal,
            rows_per_block: 0,
            act_depth: 0,
            coef_depth: 0,
            b_depth: 0,
            out_depth: 0,
            max_cmds: 0,
            clks_per_bit: 0,
        }
    }

    /// Parses an IDENTIFY payload: magic and version first (so a newer device gets a clear
    /// version error rather than a length error).
    pub fn parse(p: &[u8]) -> Result<DeviceInfo, LinkError> {
        if p.len() < 3 || p[..2] != proto::MAGIC {
            return Err(LinkError::NotSmartDeal {
                found: p[..p.len().min(2)].to_vec(),
            });
        }
        if p[2] != proto::VERSION {
            return Err(LinkError::Version {
                device: p[2],
                host: proto::VERSION,
            });
        }
        if p.len() != IDENTIFY_LEN {
            return Err(LinkError::BadReply {
                request: "IDENTIFY",
                why: format!("{} payload bytes, expected {IDENTIFY_LEN}", p.len()),
            });
        }
        let u16at = |i: usize| u32::from(u16::from_be_bytes([p[i], p[i + 1]]));
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&p[3..11]);
        // Weight mode byte (docs/protocol.md): 0 SmartDeal int8, 1 SmartDeal exact, 2 dense.
        let (weight_requant, weight_format) = match p[16] {
            0 => (WeightRequant::Int8, WeightFormat::Smartdeal),
            1 => (WeightRequant::Exact, WeightFormat::Smartdeal),
            2 => (WeightRequant::Int8, WeightFormat::Dense),
            other => {
                return Err(LinkError::BadReply {
                    request: "IDENTIFY",
                    why: format!("unknown weight mode {other}"),
                })
            }
        };
        Ok(DeviceInfo {
            version: p[2],
            fingerprint: u64::from_be_bytes(fp),
            lanes: u32::from(p[11]),
            act_bits: u32::from(p[12]),
            basis_bits: u32::from(p[13]),
            exp_bits: u32::from(p[14]),
            acc_bits: u32::from(p[15]),
            weight_requant,
            weight_format,
            rows_per_block: u16at(17),
            act_depth: u16at(19),
            coef_depth: u16at(21),
            b_depth: u16at(23),
            out_depth: u16at(25),
            max_cmds: u16at(27),
            clks_per_bit: u16at(29),
        })
    }

    /// Checks that the device was built for `cfg`; the error lists the fields that differ.
    pub fn check(&self, cfg: &AccelConfig) -> Result<(), LinkError> {
        let host = cfg.fingerprint();
        let device = format!("{:016x}", self.fingerprint);
        if device == host {
            return Ok(());
        }
        let pairs = [
            ("lanes", self.lanes, cfg.lanes),
            ("act_bits", self.act_bits, cfg.act_bits),
            ("basis_bits", self.basis_bits, cfg.basis_bits),
            ("exp_bits", self.exp_bits, cfg.exp_bits),
            ("acc_bits", self.acc_bits, cfg.acc_bits),
            ("rows_per_block", self.rows_per_block, cfg.rows_per_block),
            ("act_depth", self.act_depth, cfg.act_depth),
            ("coef_depth", self.coef_depth, cfg.coef_depth),
            ("b_depth", self.b_depth, cfg.b_depth),
            ("out_depth", self.out_depth, cfg.out_depth),
        ];
        let mut diffs: Vec<String> = pairs
            .iter()
            .filter(|(_, d, h)| d != h)
            .map(|(n, d, h)| format!("{n}: device {d}, config {h}"))
            .collect();
        if self.weight_format != cfg.weight_format {
            diffs.push(format!(
                "weight_format: device {:?}, config {:?}",
                self.weight_format, cfg.weight_format
            ));
        }
        if self.weight_requant != cfg.weight_requant {
            diffs.push(format!(
                "weight_requant: device {:?}, config {:?}",
                self.weight_requant, cfg.weight_requant
            ));
        }
        let details = if diffs.is_empty() {
            " (same reported fields: the config name or another field differs)".to_string()
        } else {
            format!(" ({})", diffs.join("; "))
        };
        Err(LinkError::ConfigMismatch {
            name: cfg.name.clone(),
            device,
            host,
            details,
        })
    }
}

/// Host-side timing and retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkOptions {
    /// Time of one byte on the wire (10 bits).
    pub byte_time: Duration,
    /// Silence that resynchronizes the device: longer than its inter-byte timeout, so a
    /// half-received frame is dropped (its NAK is read and discarded too).
    pub quiet: Duration,
    /// Extra time a reply may take beyond its bytes (device processing, USB latency).
    pub slack: Duration,
    /// Resends of a request whose reply is missing, corrupted or a transmission NAK.
    pub retries: u32,
    /// STATUS polls while waiting for a run.
    pub max_polls: u32,
}

impl LinkOptions {
    /// The policy for a device built with `link`.
    pub fn for_link(link: &BoardLink) -> LinkOptions {
        let byte_time = Duration::from_secs_f64(10.0 / f64::from(link.baud));
        let dev_timeout = Duration::from_micros(u64::from(link.timeout_us));
        LinkOptions {
            byte_time,
            quiet: dev_timeout * 2 + byte_time * 20,
            slack: dev_timeout + byte_time * 40,
            retries: 3,
            max_polls: 1000,
        }
    }

    fn reply_timeout(&self, bytes: usize) -> Duration {
        // Bytes at 1.5× the nominal time (stop-bit gaps, baud error) plus the slack.
        self.slack + self.byte_time.mul_f64(1.5 * bytes as f64)
    }
}

/// Traffic and run counters of a [`Board`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    pub frames: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Requests that were resent.
    pub retries: u64,
    /// Accelerator runs and the cycles they reported (cycles_o).
    pub runs: u64,
    pub run_cycles: u64,
}

/// A reply: response code and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub rsp: u8,
    pub payload: Vec<u8>,
}

impl Reply {
    /// The status carried by a NAK or an acknowledgement.
    pub fn status(&self) -> Option<Status> {
        Status::parse(&self.payload)
    }
}

fn name_of(command: u8) -> &'static str {
    match command {
        cmd::IDENTIFY => "IDENTIFY",
        cmd::STATUS => "STATUS",
        cmd::WRITE => "WRITE",
        cmd::RUN => "RUN",
        cmd::READ => "READ",
        _ => "request",
    }
}

/// Sends one request and reads one reply, no retries (tests use it to send malformed frames
/// with [`Transport::send`] first). Hunts for the reply sync byte; checks the CRC.
pub fn read_reply<T: Transport + ?Sized>(
    t: &mut T,
    opts: &LinkOptions,
    expect_payload: usize,
) -> Result<Reply, LinkError> {
    let bad = |why: String| LinkError::BadReply {
        request: "reply",
        why,
    };
    let first = opts.reply_timeout(expect_payload + 5);
    // Skip anything before the sync byte (bounded: a stream of garbage is an error).
    let mut skipped = 0;
    loop {
        let b = t.recv(1, if skipped == 0 { first } else { opts.slack })?;
        if b[0] == proto::SYNC_RSP {
            break;
        }
        skipped += 1;
        if skipped > 64 {
            return Err(bad("no sync byte in 64 bytes".into()));
        }
    }
    let h = t.recv(3, opts.reply_timeout(3))?;
    let len = usize::from(u16::from_be_bytes([h[1], h[2]]));
    let rest = t.recv(len + 1, opts.reply_timeout(len + 1))?;
    let mut body = h.clone();
    body.extend_from_slice(&rest[..len]);
    let crc = proto::crc8(&body);
    if crc != rest[len] {
        return Err(bad(format!(
            "CRC {:02x}, computed {crc:02x} (rsp {:02x}, {len} bytes)",
            rest[len], h[0]
        )));
    }
    Ok(Reply {
        rsp: h[0],
        payload: rest[..len].to_vec(),
    })
}

/// Waits for silence of `opts.quiet`, discarding whatever arrives; returns how many bytes were
/// discarded.
pub fn resync<T: Transport + ?Sized>(t: &mut T, opts: &LinkOptions) -> Result<usize, LinkError> {
    let mut n = 0;
    loop {
        match t.recv(1, opts.quiet) {
            Ok(_) => {
                n += 1;
                if n > 1 << 20 {
                    return Err(LinkError::Input(
                        "the line never goes quiet (over 1 MiB of unsolicited bytes)".into(),
                    ));
                }
            }
            Err(TransportError::Timeout { .. }) => return Ok(n),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A SmartDeal accelerator on the other end of a [`Transport`].
pub struct Board<T: Transport> {
    t: T,
    cfg: AccelConfig,
    info: DeviceInfo,
    opts: LinkOptions,
    stats: LinkStats,
}

impl<T: Transport> Board<T> {
    /// Resynchronizes, identifies the device and checks protocol version and configuration.
    pub fn connect(t: T, cfg: &AccelConfig, opts: LinkOptions) -> Result<Board<T>, LinkError> {
        let mut b = Board {
            t,
            cfg: cfg.clone(),
            // Replaced by the device's answer below, before any WRITE needs `max_cmds`.
            info: DeviceInfo::unknown(),
            opts,
            stats: LinkStats::default(),
        };
        resync(&mut b.t, &b.opts)?;
        b.info = b.identify()?;
        b.info.check(cfg)?;
        Ok(b)
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }
    /// The configuration the device was checked against.
    pub fn config(&self) -> &AccelConfig {
        &self.cfg
    }
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }
    pub fn options(&self) -> &LinkOptions {
        &self.opts
    }
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.t
    }
    pub fn into_transport(self) -> T {
        self.t
    }

    /// One request with retries: a missing or corrupted reply, or a NAK for a transmission
    /// error (framing, CRC, timeout, length), resynchronizes and resends. Other NAKs (unknown
    /// command, bad argument, busy) are errors.
    pub fn request(
        &mut self,
        command: u8,
        payload: &[u8],
        expect_payload: usize,
    ) -> Result<Vec<u8>, LinkError> {
        let frame = encode_request(command, payload);
        let request = name_of(command);
        let mut last = String::new();
        for attempt in 0..=self.opts.retries {
            if attempt > 0 {
                self.stats.retries += 1;
                resync(&mut self.t, &self.opts)?;
            }
            self.t.send(&frame)?;
            self.stats.frames += 1;
            self.stats.bytes_sent += frame.len() as u64;
            match read_reply(&mut self.t, &self.opts, expect_payload) {
                Ok(r) => {
                    self.stats.bytes_received += r.payload.len() as u64 + 5;
                    if r.rsp == command | proto::RSP_OK_BIT {
                        return Ok(r.payload);
                    }
                    if r.rsp == proto::RSP_NAK {
                        let code = r.status().map_or(0, |s| s.last_err);
                        // BAD_LEN too: the length is checked before the CRC (an over-long
                        // length is rejected at once), so a corrupted length byte shows up as
                        // BAD_LEN; this driver only sends valid lengths.
                        if matches!(
                            code,
                            err::FRAMING | err::BAD_CRC | err::TIMEOUT | err::BAD_LEN
                        ) {
                            last = format!("NAK {code} ({})", err::name(code));
                            continue;
                        }
                        return Err(LinkError::Nak { request, code });
                    }
                    last = format!("unexpected response code {:02x}", r.rsp);
                }
                Err(LinkError::Transport(TransportError::Timeout { .. })) => {
                    last = "timeout".into();
                }
                Err(LinkError::BadReply { why, .. }) => last = why,
                Err(e) => return Err(e),
            }
        }
        Err(LinkError::NoReply {
            request,
            attempts: self.opts.retries + 1,
            last,
        })
    }

    fn status_reply(&mut self, command: u8, payload: &[u8]) -> Result<Status, LinkError> {
        let p = self.request(command, payload, proto::STATUS_LEN)?;
        Status::parse(&p).ok_or_else(|| LinkError::BadReply {
            request: name_of(command),
            why: format!("{} status bytes", p.len()),
        })
    }

    pub fn identify(&mut self) -> Result<DeviceInfo, LinkError> {
        let p = self.request(cmd::IDENTIFY, &[], IDENTIFY_LEN)?;
        DeviceInfo::parse(&p)
    }

    pub fn status(&mut self) -> Result<Status, LinkError> {
        self.status_reply(cmd::STATUS, &[])
    }

    /// One WRITE frame (at most `info().max_cmds` commands); returns the acknowledgement.
    pub fn write(&mut self, cmds: &[Cmd]) -> Result<Status, LinkError> {
        assert!(
            !cmds.is_empty() && cmds.len() <= self.info.max_cmds as usize,
            "a WRITE carries 1..={} commands",
            self.info.max_cmds
        );
        let payload: Vec<u8> = cmds.iter().flat_map(Cmd::bytes).collect();
        self.status_reply(cmd::WRITE, &payload)
    }

    /// Writes word groups, packing whole groups into as few frames as fit; fails if the
    /// accelerator reports a dropped command.
    pub fn write_groups(&mut self, groups: &[Vec<Cmd>], during: &str) -> Result<(), LinkError> {
        let max = self.info.max_cmds as usize;
        let mut batch: Vec<Cmd> = Vec::new();
        for g in groups {
            assert!(
                g.len() <= max,
                "a buffer word needs more than {max} commands"
            );
            if batch.len() + g.len() > max {
                let s = self.write(&batch)?;
                if s.err {
                    return Err(LinkError::Device(during.to_string()));
                }
                batch.clear();
            }
            batch.extend_from_slice(g);
        }
        if !batch.is_empty() {
            let s = self.write(&batch)?;
            if s.err {
                return Err(LinkError::Device(during.to_string()));
            }
        }
        Ok(())
    }

    /// Starts a run of stream entries `0..=last` (a fully connected run).
    pub fn run(&mut self, last: u16, relu: bool) -> Result<Status, LinkError> {
        self.run_flags(last, image::start_data(relu, None) as u8)
    }

    /// Starts a run with START's data byte `flags` (`image::start_data`: ReLU, band run,
    /// stride 2).
    pub fn run_flags(&mut self, last: u16, flags: u8) -> Result<Status, LinkError> {
        let l = last.to_be_bytes();
        self.status_reply(cmd::RUN, &[l[0], l[1], flags])
    }

    /// Polls STATUS until the accelerator is done.
    pub fn wait_done(&mut self) -> Result<Status, LinkError> {
        for _ in 0..self.opts.max_polls {
            let s = self.status()?;
            if s.done && !s.busy {
                return Ok(s);
            }
        }
        Err(LinkError::RunTimeout {
            polls: self.opts.max_polls,
        })
    }

    /// Reads `n` output bytes from address `addr`.
    pub fn read(&mut self, addr: u16, n: u16) -> Result<Vec<u8>, LinkError> {
        let a = addr.to_be_bytes();
        let c = n.to_be_bytes();
        let p = self.request(cmd::READ, &[a[0], a[1], c[0], c[1]], usize::from(n))?;
        if p.len() != usize::from(n) {
            return Err(LinkError::BadReply {
                request: "READ",
                why: format!("{} bytes, asked for {n}", p.len()),
            });
        }
        Ok(p)
    }

    /// Runs a layer on `x` (`[tokens][inputs]`, row-major) and returns `[tokens][outputs]`,
    /// planned by [`plan::run_layer`] like every engine that drives the host interface.
    pub fn run_layer(&mut self, layer: &FcLayer, x: &[i8]) -> Result<Vec<i8>, LinkError> {
        Ok(plan::run_layer(self, layer, x)?.0)
    }
}

impl<T: Transport> Device for Board<T> {
    type Error = LinkError;

    fn config(&self) -> &AccelConfig {
        &self.cfg
    }

    fn load_activations(&mut self, at: u32, words: &[Word]) -> Result<(), LinkError> {
        let cmds: Vec<Vec<Cmd>> = words
            .iter()
            .enumerate()
            .map(|(a, w)| word_cmds(op::WR_ACT, at as usize + a, w))
            .collect();
        self.write_groups(&cmds, "activation loading")
    }

    fn load_run(&mut self, run: &RunImage) -> Result<(), LinkError> {
        let load = run_load_groups(&self.cfg, run);
        self.write_groups(&load, "buffer loading")
    }

    fn start(&mut self, run: &RunImage, band: Option<&BandStart>) -> Result<u64, LinkError> {
        if let Some(b) = band {
            // The band parameters go to the staging register: PUSHes with no write (idempotent
            // like every WRITE group: they set the whole parameter word).
            let mut push = word_cmds(op::NOP, 0, &b.word(&self.cfg));
            push.pop();
            self.write_groups(&[push], "band parameters")?;
        }
        let last = (run.coef.len() - 1) as u16;
        self.run_flags(last, image::start_data(run.relu, band) as u8)?;
        let s = self.wait_done()?;
        if s.err {
            return Err(LinkError::Device("the run".into()));
        }
        self.stats.runs += 1;
        self.stats.run_cycles += u64::from(s.cycles);
        Ok(u64::from(s.cycles))
    }

    fn read_outputs(&mut self, n: u32) -> Result<Vec<i8>, LinkError> {
        Ok(self
            .read(0, n as u16)?
            .into_iter()
            .map(|b| b as i8)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smartdeal_core::protocol::identify_payload;
    use std::collections::VecDeque;

    /// A scripted device: answers each request frame with the next canned reply (None: stays
    /// silent), and records what it was sent.
    struct Fake {
        replies: VecDeque<Option<Vec<u8>>>,
        pending: VecDeque<u8>,
        sent: Vec<Vec<u8>>,
    }

    impl Transport for Fake {
        fn send(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
            self.sent.push(bytes.to_vec());
            if let Some(Some(r)) = self.replies.pop_front() {
                self.pending.extend(r);
            }
            Ok(())
        }
        fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u8>, TransportError> {
            if self.pending.len() < n {
                let got = self.pending.drain(..).collect();
                return Err(TransportError::Timeout {
                    timeout,
                    wanted: n,
                    got,
                });
            }
            Ok(self.pending.drain(..n).collect())
        }
    }

    fn fake(replies: Vec<Option<Vec<u8>>>) -> Fake {
        Fake {
            replies: replies.into(),
            pending: VecDeque::new(),
            sent: Vec::new(),
        }
    }

    fn opts() -> LinkOptions {
        LinkOptions::for_link(&BoardLink::simulation())
    }

    fn tiny() -> AccelConfig {
        AccelConfig::preset("tiny").unwrap()
    }

    fn id_reply(cfg: &AccelConfig) -> Vec<u8> {
        encode_reply(
            cmd::IDENTIFY | 0x80,
            &identify_payload(cfg, &BoardLink::simulation()),
        )
    }

    #[test]
    fn frames_round_trip() {
        let f = encode_request(cmd::READ, &[0, 1, 0, 4]);
        assert_eq!(f[..4], [0xA5, 0x05, 0x00, 0x04]);
        assert_eq!(*f.last().unwrap(), proto::crc8(&f[1..f.len() - 1]));
        let c = Cmd {
            op: 1,
            addr: 0x1234,
            data: 0xdead_beef,
        };
        assert_eq!(c.bytes(), [1, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef]);
        let mut t = fake(vec![Some(encode_reply(0x82, &[3, 0, 0, 0, 0, 0, 9]))]);
        t.send(&[]).unwrap();
        let r = read_reply(&mut t, &opts(), 7).unwrap();
        assert_eq!(r.rsp, 0x82);
        let s = r.status().unwrap();
        assert!(s.busy && s.done && !s.err && s.cycles == 9);
    }

    /// The worked examples of docs/protocol.md.
    #[test]
    fn protocol_doc_examples() {
        assert_eq!(
            encode_request(cmd::STATUS, &[]),
            [0xA5, 0x02, 0x00, 0x00, 0xD6]
        );
        assert_eq!(
            encode_reply(0x82, &[2, 0, 0, 0, 0, 0x0e, 0x78]),
            [0x5A, 0x82, 0x00, 0x07, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0E, 0x78, 0x25]
        );
        let cmds = [
            Cmd {
                op: 1,
                addr: 0,
                data: 0x1234_5678,
            },
            Cmd {
                op: 2,
                addr: 5,
                data: 0,
            },
        ];
        let payload: Vec<u8> = cmds.iter().flat_map(Cmd::bytes).collect();
        assert_eq!(
            encode_request(cmd::WRITE, &payload),
            [
                0xA5, 0x03, 0x00, 0x0E, 0x01, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78, 0x02, 0x00, 0x05,
                0x00, 0x00, 0x00, 0x00, 0xEB
            ]
        );
    }

    #[test]
    fn identify_parses_and_checks_the_config() {
        let cfg = tiny();
        let info = DeviceInfo::parse(&identify_payload(&cfg, &BoardLink::simulation())).unwrap();
        assert_eq!(info.lanes, 4);
        assert_eq!(info.max_cmds, 36);
        assert_eq!(info.clks_per_bit, 8);
        info.check(&cfg).unwrap();
        let mut other = cfg.clone();
        other.act_depth = 128;
        let e = info.check(&other).unwrap_err().to_string();
        assert!(e.contains("act_depth: device 256, config 128"), "{e}");
    }

    #[test]
    fn wrong_protocol_version_is_a_clear_error() {
        let mut p = identify_payload(&tiny(), &BoardLink::simulation());
        p[2] = proto::VERSION + 1;
        let t = fake(vec![Some(encode_reply(0x81, &p))]);
        let e = Board::connect(t, &tiny(), opts()).err().unwrap();
        assert!(
            matches!(e, LinkError::Version { device, host } if device == proto::VERSION + 1 && host == proto::VERSION),
            "{e}"
        );
        let t = fake(vec![Some(encode_reply(0x81, b"XY\x01"))]);
        let e = Board::connect(t, &tiny(), opts()).err().unwrap();
        assert!(matches!(e, LinkError::NotSmartDeal { .. }), "{e}");
    }

    #[test]
    fn lost_and_corrupted_replies_are_retried() {
        let cfg = tiny();
        let mut bad = encode_reply(0x82, &[2, 0, 0, 0, 0, 0, 1]);
        *bad.last_mut().unwrap() ^= 1;
        let nak = encode_reply(proto::RSP_NAK, &[0, err::BAD_CRC, 1, 0, 0, 0, 0]);
        let good = encode_reply(0x82, &[2, 0, 0, 0, 0, 0, 42]);
        let t = fake(vec![
            Some(id_reply(&cfg)),
            None,
            Some(bad),
            Some(nak),
            Some(good),
        ]);
        let mut b = Board::connect(t, &cfg, opts()).unwrap();
        let s = b.status().unwrap();
        assert_eq!(s.cycles, 42);
        assert_eq!(b.stats().retries, 3);
        let t = b.into_transport();
        assert_eq!(t.sent.len(), 5);
        assert!(t.sent[1..]
            .iter()
            .all(|f| *f == encode_request(cmd::STATUS, &[])));
    }

    #[test]
    fn semantic_naks_are_not_retried() {
        let cfg = tiny();
        let nak = encode_reply(proto::RSP_NAK, &[0, err::BAD_ARG, 1, 0, 0, 0, 0]);
        let t = fake(vec![Some(id_reply(&cfg)), Some(nak)]);
        let mut b = Board::connect(t, &cfg, opts()).unwrap();
        let e = b.read(250, 10).unwrap_err();
        assert!(
            matches!(
                e,
                LinkError::Nak {
                    request: "READ",
                    code: err::BAD_ARG
                }
            ),
            "{e}"
        );
        assert_eq!(b.stats().retries, 0);
    }

    #[test]
    fn fingerprint_mismatch_names_the_fields() {
        let cfg = tiny();
        let mut other = cfg.clone();
        other.lanes = 8;
        let t = fake(vec![Some(id_reply(&cfg))]);
        let e = Board::connect(t, &other, opts()).err().unwrap().to_string();
        assert!(e.contains("lanes: device 4, config 8"), "{e}");
    }
}
