#!/usr/bin/env python3
"""Independent numpy recomputation of a layer's int8 outputs from `smartdeal inspect --export-int`.

    numpy_reference.py EXPORT_DIR LAYER x.npy y_ref.npy

Fully connected layer (w_int8 [out, in]): x is [in] or [T, in], y is [out] or [T, out];
acc = x @ w_int8.T.

Convolution (LAYER.requant.json has "conv": {"in_channels", "kernel", "stride", "padding"};
w_int8 is the kernel [Cout, C, k, k]): x is [C, H, W] or [N, C, H, W], y is [N, Cout, H', W']
(N = 1 for a [C, H, W] input), H' = (H + 2p - k) // s + 1 and likewise W';
acc[n, o, i, j] = sum over c, kh, kw of xp[n, c, s*i + kh, s*j + kw] * w[o, c, kh, kw], where xp
is x with p zero pixels on each side of H and W.

Then, per output channel, y = sat_int8(((acc + bias) * M + 2^(sh-1)) >> sh) (no rounding term
when sh = 0), and max(0, y) when the layer has ReLU (docs/numerics.md). Everything in int64; `>>`
on int64 is an arithmetic shift.
"""
import json
import sys

import numpy as np


def requant(acc, bias, m, sh, relu, axis):
    """Output requantization of int64 accumulators; `axis` indexes the output channels."""
    shape = [1] * acc.ndim
    shape[axis] = -1
    bias, m, sh = (v.reshape(shape) for v in (bias, m, sh))
    t = (acc + bias) * m
    rnd = np.where(sh > 0, np.left_shift(1, np.maximum(sh - 1, 0)), 0)
    y = np.clip((t + rnd) >> sh, -128, 127)
    if relu:
        y = np.maximum(y, 0)
    return y.astype(np.int8)


def conv_acc(x, w, conv):
    """Accumulators [N, Cout, H', W'] of a convolution, exact in int64."""
    k, s, p = conv["kernel"], conv["stride"], conv["padding"]
    if x.ndim == 3:
        x = x[np.newaxis]
    if x.ndim != 4:
        raise ValueError(f"a convolution's input must be [C, H, W] or [N, C, H, W], not {list(x.shape)}")
    n, c, h, wd = x.shape
    if c != conv["in_channels"] or w.shape[1:] != (c, k, k):
        raise ValueError(f"input has {c} channels; the kernel is {list(w.shape)}")
    if h + 2 * p < k or wd + 2 * p < k:
        raise ValueError(f"a {h}x{wd} input is too small for a {k}x{k} kernel with padding {p}")
    ho, wo = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    acc = np.zeros((n, w.shape[0], ho, wo), dtype=np.int64)
    for kh in range(k):
        for kw in range(k):
            win = xp[:, :, kh : kh + s * (ho - 1) + 1 : s, kw : kw + s * (wo - 1) + 1 : s]
            acc += np.einsum("nchw,oc->nohw", win, w[:, :, kh, kw])
    return acc


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
    if rq.get("conv") is not None:
        try:
            acc = conv_acc(x, w, rq["conv"])
        except ValueError as e:
            print(f"numpy_reference.py: {x_path}: {e}", file=sys.stderr)
            return 2
        y = requant(acc, bias, m, sh, rq["relu"], axis=1)
    else:
        y = requant(x @ w.T, bias, m, sh, rq["relu"], axis=-1)
    np.save(out_path, y)
    return 0


if __name__ == "__main__":
    sys.exit(main())
