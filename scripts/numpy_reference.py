#!/usr/bin/env python3
"""Independent numpy recomputation of a layer's int8 outputs from `smartdeal inspect --export-int`.

    numpy_reference.py EXPORT_DIR LAYER x.npy y_ref.npy

y = sat_int8(((x @ w_int8.T + bias) * M + 2^(sh-1)) >> sh)  (no rounding term when sh = 0),
then max(0, y) when the layer has ReLU (docs/numerics.md). Everything in int64; `>>` on int64 is
an arithmetic shift.
"""
import json
import sys

import numpy as np


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    export, layer, x_path, out_path = sys.argv[1:]
    w = np.load(f"{export}/{layer}.w_int8.npy").astype(np.int64)
    bias = np.load(f"{export}/{layer}.bias_int32.npy").astype(np.int64)
    with open(f"{export}/{layer}.requant.json") as f:
        rq = json.load(f)
    m = np.asarray(rq["multiplier"], dtype=np.int64)
    sh = np.asarray(rq["shift"], dtype=np.int64)
    x = np.load(x_path).astype(np.int64)
    acc = x @ w.T + bias
    t = acc * m
    rnd = np.where(sh > 0, np.left_shift(1, np.maximum(sh - 1, 0)), 0)
    y = np.clip((t + rnd) >> sh, -128, 127)
    if rq["relu"]:
        y = np.maximum(y, 0)
    np.save(out_path, y.astype(np.int8))
    return 0


if __name__ == "__main__":
    sys.exit(main())
