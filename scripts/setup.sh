#!/usr/bin/env bash
# Installs everything the SmartDeal toolchain and its tests need on a fresh Debian 12 machine:
# Verilator, Yosys, Icarus Verilog, the iCE40 flow (nextpnr-ice40, icestorm), a C++ compiler,
# and a Python venv (.venv) with numpy for the independent numpy cross-check.
# Idempotent: safe to run again. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

echo "== apt packages"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  verilator yosys iverilog nextpnr-ice40 fpga-icestorm \
  g++ make python3 python3-venv >/dev/null
echo "   verilator: $(verilator --version)"
echo "   yosys:     $(yosys -V)"

echo "== python venv (.venv) with numpy"
if [ ! -x .venv/bin/python3 ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check numpy
echo "   $(.venv/bin/python3 -c 'import numpy; print("numpy", numpy.__version__)')"

echo "== rust"
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (rustup, Rust >= 1.90) and re-run" >&2
  exit 1
fi
echo "   $(cargo --version)"
bash scripts/fetch_minilm.sh
echo "setup done"
