#!/usr/bin/env bash
# The main job on the built-in default (preset `tiny`): generate the accelerator's Verilog,
# lint it, make a random 384x384 SmartDeal layer at 30 % row density, run it on the golden
# model and on the Verilator simulation of the generated RTL, and check they agree bit for bit;
# then decompose a real trained layer (all-MiniLM-L6-v2, fetched by scripts/setup.sh) and run it
# the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/demo}
PRESET=${PRESET:-tiny}
mkdir -p "$OUT"

cargo build --release -q --bins
BIN=target/release

echo "== gen-verilog --preset $PRESET"
$BIN/gen-verilog --preset "$PRESET" --out "$OUT/rtl"
(cd "$OUT/rtl" && verilator --lint-only -Wall --top-module sd_top $(cat files.f))
echo "   verilator --lint-only -Wall: clean"

echo "== random 384x384 layer, 30 % rows present"
$BIN/smartdeal random-layer --preset "$PRESET" --inputs 384 --outputs 384 --row-density 0.3 \
  --seed 1 --out "$OUT/layer.sdm"
$BIN/smartdeal inspect "$OUT/layer.sdm"

echo "== activations: 4 random int8 vectors"
.venv/bin/python3 - "$OUT/x.npy" <<'PY'
import sys, numpy as np
np.save(sys.argv[1], np.random.default_rng(1).integers(-128, 128, size=(4, 384), dtype=np.int8))
PY

echo "== run: golden model and Verilator"
$BIN/smartdeal run --engine golden --preset "$PRESET" --model "$OUT/layer.sdm" \
  --input "$OUT/x.npy" --out "$OUT/y_golden.npy"
$BIN/smartdeal run --engine verilator --preset "$PRESET" --model "$OUT/layer.sdm" \
  --input "$OUT/x.npy" --out "$OUT/y_rtl.npy" --stats-json "$OUT/stats.json"
cmp "$OUT/y_golden.npy" "$OUT/y_rtl.npy"
echo "   golden == RTL, bit for bit ($(cat "$OUT/stats.json" | tr -d '\n '))"
echo "== independent numpy recomputation from inspect --export-int"
$BIN/smartdeal inspect --preset "$PRESET" "$OUT/layer.sdm" --export-int "$OUT/ints" >/dev/null
.venv/bin/python3 scripts/numpy_reference.py "$OUT/ints" layer0 "$OUT/x.npy" "$OUT/y_numpy.npy"
.venv/bin/python3 -c 'import sys, numpy as np; a, b = (np.load(f) for f in sys.argv[1:]); sys.exit(0 if a.shape == b.shape and (a == b).all() else "numpy and RTL outputs differ")' "$OUT/y_numpy.npy" "$OUT/y_rtl.npy"
echo "   numpy == RTL, bit for bit"

echo "== real weights: decompose all-MiniLM-L6-v2 layer 0 attention query (384x384)"
$BIN/smartdeal decompose cache/minilm/model.safetensors \
  --tensor encoder.layer.0.attention.self.query.weight --preset "$PRESET" \
  --out "$OUT/minilm_q.sdm" --json "$OUT/minilm_q.json"
$BIN/smartdeal run --engine golden --preset "$PRESET" --model "$OUT/minilm_q.sdm" \
  --input "$OUT/x.npy" --out "$OUT/yq_golden.npy"
$BIN/smartdeal run --engine verilator --preset "$PRESET" --model "$OUT/minilm_q.sdm" \
  --input "$OUT/x.npy" --out "$OUT/yq_rtl.npy"
cmp "$OUT/yq_golden.npy" "$OUT/yq_rtl.npy"
echo "   MiniLM query layer: golden == RTL, bit for bit"
echo "demo done: outputs in $OUT"
