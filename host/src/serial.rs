//! A real board's serial port as a link [`Transport`] (`smartdeal run --engine board`).
//!
//! The port is opened 8N1 at the given baud, raw, without flow control, in exclusive mode. A
//! [`Transport::recv`] timeout is measured **on the wire**: from the moment the bytes handed to
//! [`Transport::send`] have left the UART (estimated from the baud rate, since the driver's
//! buffer accepts them at once), so a long WRITE frame does not eat into the reply's time.
//! [`SerialTransport::link_options`] adds an allowance for the latency of USB serial bridges.

use crate::link::{LinkOptions, Transport, TransportError};
use serialport::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits};
use smartdeal_core::protocol::BoardLink;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// The serial port crate, for callers that need the raw port (e.g. pseudo-terminal pairs in
/// tests: `serialport::TTYPort::pair()`).
pub use serialport;

/// Extra reply time for USB serial bridges: an FTDI chip holds received bytes up to its latency
/// timer (16 ms by default) before passing them to the host.
pub const USB_LATENCY: Duration = Duration::from_millis(20);

/// Why a serial port cannot be used; every message names the device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    #[error(
        "serial port {device} does not exist (is the board plugged in? USB serial ports are \
         usually /dev/ttyUSB* or /dev/ttyACM*)"
    )]
    NotFound { device: String },
    #[error("{device} is not a serial port ({why})")]
    NotSerial { device: String, why: String },
    #[error(
        "permission denied opening serial port {device} (add your user to the group that owns \
         it, usually `dialout`, and log in again)"
    )]
    PermissionDenied { device: String },
    #[error("serial port {device} is busy (another program has it open)")]
    Busy { device: String },
    #[error("baud must be positive")]
    ZeroBaud,
    #[error("cannot open serial port {device} at {baud} baud: {why}")]
    Other {
        device: String,
        baud: u32,
        why: String,
    },
}

/// A board on a serial port.
pub struct SerialTransport {
    port: Box<dyn SerialPort>,
    device: String,
    baud: u32,
    byte_time: Duration,
    /// When the bytes sent so far will have left the wire (estimate).
    tx_done: Instant,
}

impl std::fmt::Debug for SerialTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialTransport")
            .field("device", &self.device)
            .field("baud", &self.baud)
            .finish_non_exhaustive()
    }
}

/// What kind of file `device` is, before trying to open it (clearer errors than the ioctls').
fn precheck(device: &str) -> Result<(), SerialError> {
    match std::fs::metadata(device) {
        Err(e) if e.kind() == ErrorKind::NotFound => Err(SerialError::NotFound {
            device: device.to_string(),
        }),
        #[cfg(unix)]
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            let ft = m.file_type();
            if ft.is_char_device() {
                Ok(())
            } else {
                let what = if ft.is_dir() {
                    "a directory"
                } else if ft.is_file() {
                    "a regular file"
                } else {
                    "not a character device"
                };
                Err(SerialError::NotSerial {
                    device: device.to_string(),
                    why: what.to_string(),
                })
            }
        }
        // Windows COM ports have no metadata worth checking; let the open report.
        _ => Ok(()),
    }
}

fn classify(device: &str, baud: u32, e: &serialport::Error) -> SerialError {
    let device = device.to_string();
    match e.kind() {
        serialport::ErrorKind::Io(ErrorKind::NotFound) => SerialError::NotFound { device },
        serialport::ErrorKind::Io(ErrorKind::PermissionDenied) => {
            SerialError::PermissionDenied { device }
        }
        // EBUSY (TIOCEXCL) or a held flock.
        serialport::ErrorKind::NoDevice => SerialError::Busy { device },
        // ENOTTY from the first terminal ioctl (its text depends on the libc).
        _ if e.description.contains("typewriter")
            || e.description.contains("Inappropriate ioctl") =>
        {
            SerialError::NotSerial {
                device,
                why: "not a terminal".into(),
            }
        }
        _ => SerialError::Other {
            device,
            baud,
            why: e.description.clone(),
        },
    }
}

impl SerialTransport {
    /// Opens `device` 8N1 at `baud` and discards anything already buffered.
    pub fn open(device: &str, baud: u32) -> Result<SerialTransport, SerialError> {
        if baud == 0 {
            return Err(SerialError::ZeroBaud);
        }
        precheck(device)?;
        let port = serialport::new(device, baud)
            .data_bits(DataBits::Eight)
            .parity(Parity::None)
            .stop_bits(StopBits::One)
            .flow_control(FlowControl::None)
            .timeout(Duration::from_millis(100))
            .open()
            .map_err(|e| classify(device, baud, &e))?;
        // Best effort: the link driver resynchronizes before its first request anyway.
        let _ = port.clear(ClearBuffer::All);
        Ok(SerialTransport {
            port,
            device: device.to_string(),
            baud,
            byte_time: Duration::from_secs_f64(10.0 / f64::from(baud)),
            tx_done: Instant::now(),
        })
    }

    pub fn device(&self) -> &str {
        &self.device
    }

    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// The link policy for a board built by `smartdeal fpga build` at this baud (device
    /// inter-byte timeout 10 ms, [`BoardLink::uart`]), plus [`USB_LATENCY`] for the reply slack
    /// and the resynchronizing silence.
    pub fn link_options(&self) -> LinkOptions {
        let link = BoardLink {
            baud: self.baud,
            // The clock does not enter the host's timing.
            ..BoardLink::uart(12_000_000)
        };
        let mut o = LinkOptions::for_link(&link);
        o.slack += USB_LATENCY;
        o.quiet += USB_LATENCY;
        o
    }

    fn io_error(&self, what: &str, e: &std::io::Error) -> TransportError {
        TransportError::Io(format!("serial port {}: {what} failed: {e}", self.device))
    }
}

impl Transport for SerialTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        let wire = self.byte_time * bytes.len() as u32;
        // Only a stuck port (hardware flow control, a vanished device) takes longer than this.
        let budget = wire * 2 + Duration::from_secs(1);
        self.port
            .set_timeout(budget)
            .map_err(|e| TransportError::Io(format!("serial port {}: {e}", self.device)))?;
        self.port.write_all(bytes).map_err(|e| {
            if e.kind() == ErrorKind::TimedOut {
                TransportError::Io(format!(
                    "serial port {}: writing {} bytes timed out after {budget:?}",
                    self.device,
                    bytes.len()
                ))
            } else {
                self.io_error("write", &e)
            }
        })?;
        self.tx_done = self.tx_done.max(Instant::now()) + wire;
        Ok(())
    }

    /// Reads exactly `n` bytes; `timeout` starts once the bytes sent so far are on the wire.
    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u8>, TransportError> {
        let deadline = self.tx_done.max(Instant::now()) + timeout;
        let mut got = Vec::with_capacity(n);
        let mut buf = [0u8; 512];
        while got.len() < n {
            let now = Instant::now();
            if now >= deadline {
                return Err(TransportError::Timeout {
                    timeout,
                    wanted: n,
                    got,
                });
            }
            self.port
                .set_timeout(deadline - now)
                .map_err(|e| TransportError::Io(format!("serial port {}: {e}", self.device)))?;
            // Never read past `n`: the rest belongs to the next call.
            let want = (n - got.len()).min(buf.len());
            match self.port.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(TransportError::Io(format!(
                        "serial port {}: the device hung up",
                        self.device
                    )))
                }
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::TimedOut | ErrorKind::Interrupted | ErrorKind::WouldBlock
                    ) => {}
                Err(e) => return Err(self.io_error("read", &e)),
            }
        }
        Ok(got)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use serialport::TTYPort;

    #[test]
    fn missing_and_non_serial_devices_are_named() {
        let e = SerialTransport::open("/dev/nonexistent-smartdeal", 115_200).unwrap_err();
        assert!(matches!(e, SerialError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("/dev/nonexistent-smartdeal"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("plain");
        std::fs::write(&f, b"x").unwrap();
        let e = SerialTransport::open(f.to_str().unwrap(), 115_200).unwrap_err();
        assert!(e.to_string().contains("not a serial port"), "{e}");
        let e = SerialTransport::open("/dev/null", 115_200).unwrap_err();
        assert!(
            e.to_string().contains("/dev/null is not a serial port"),
            "{e}"
        );
        assert_eq!(
            SerialTransport::open("/dev/null", 0).unwrap_err(),
            SerialError::ZeroBaud
        );
    }

    /// Bytes go both ways through a pseudo-terminal; a short read is a timeout that carries
    /// what did arrive, and it does not read past what was asked for.
    #[test]
    fn pty_round_trip_and_timeouts() {
        let (mut master, slave) = TTYPort::pair().expect("a pseudo-terminal pair");
        let name = slave.name().expect("the slave's path");
        let mut t = SerialTransport::open(&name, 115_200).unwrap();
        t.send(b"hello").unwrap();
        let mut buf = [0u8; 5];
        master.set_timeout(Duration::from_secs(2)).unwrap();
        master.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        master.write_all(b"abcdef").unwrap();
        assert_eq!(t.recv(4, Duration::from_secs(2)).unwrap(), b"abcd");
        let t0 = Instant::now();
        match t.recv(3, Duration::from_millis(50)) {
            Err(TransportError::Timeout { wanted: 3, got, .. }) => assert_eq!(got, b"ef"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(50) && took < Duration::from_secs(2));
        drop(slave);
    }
}
