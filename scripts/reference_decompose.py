#!/usr/bin/env python3
"""Independent numpy SmartDeal decomposition of one fully connected weight (W ~ Ce . B per block).

    reference_decompose.py WEIGHTS.safetensors --tensor NAME [--iters 30] [--threshold 1e-2]
                           [--workers 2] [--dtype float64|float32] [--out-npz FILE]

Written from docs/smartdeal-algorithm.md sections 2-3 (shared docs), not from the authors' code.
Options are the reference ones: tol 1e-10, rcond 1e-10, max_C 32, decay unused (scale=False), no row
thresholding (that is for 3x3 conv only); numpy.linalg.lstsq (SVD, gelsd) for both least-squares steps.

Reshaping, per output row of W[out][in] (n = in): pad the row with zeros to 3*num_split*size_split
(table in section 2; for n not in the table, m = ceil(n/3) rows split in blocks of m0 = factor_long(m)),
reshape row-major to (rows, 3) -- row r holds inputs 3r, 3r+1, 3r+2 -- and cut it into num_split
blocks of size_split rows. Each block A0 (m0 x 3) is decomposed independently:

    A = A0^T (3 x m0); Bt = I3; Ct = A
    for i in 0 .. iters-2:
        Cq = pow2(Ct); if i >= 1 and ||Cq - Cq_prev||_F <= tol: break; Cq_prev = Cq
        Bt = lstsq(Cq^T, A^T)^T ; Ct = lstsq(Bt, A) ; Ct[|Ct| < thr] = 0
    Ct = pow2(Ct); Bt = lstsq(Ct^T, A^T)^T ; Ce = Ct^T (m0 x 3), B = Bt^T (3 x 3)

pow2: sign kept, each nonzero magnitude v -> nearest power of two in the linear domain with ties to the
smaller power (e = ceil(log2 v); 2^(e-1) if v - 2^(e-1) <= 2^e - v else 2^e; 0.75 -> 0.5, 3 -> 2),
then clipped to max_C = 32. No lower clip: the threshold step is what removes small coefficients.

Prints one JSON object: rel_error = ||W - Ce.B||_F / ||W||_F over the real (unpadded) weights,
Ce density over all Ce elements including padding rows (and over the rows holding real weights),
number of distinct nonzero |Ce| magnitudes, the code width and bits/weight of section 5, seconds.
--out-npz saves ce [out, blocks, rows, 3], b [out, blocks, 3, 3], iters [out, blocks] (number of
B/C steps each block ran), and the shape/option metadata, for an element-by-element comparison.

--dtype float32 runs every step in float32 (as the authors' code does on torch .numpy() weights:
numpy.linalg.lstsq keeps float32 inputs in float32); the default float64 is the exact reference.
"""
import argparse
import json
import math
import os
import sys
import time
from multiprocessing import Pool

# The matrices are 3x3 / 3xm0: BLAS threads only add contention with the worker processes.
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

TOL = 1e-10
RCOND = 1e-10
MAX_C = 32.0

# n -> (num_split, size_split), section 2.
FC_TABLE = {
    4096: (8, 171), 2048: (4, 171), 1280: (3, 143), 1024: (2, 171), 960: (2, 160), 576: (1, 192),
    512: (1, 171), 384: (1, 128), 320: (1, 107), 256: (1, 86), 192: (1, 64), 160: (1, 54),
    144: (1, 48), 128: (1, 43), 96: (1, 32), 64: (1, 22), 32: (1, 11), 24: (1, 8), 16: (1, 6),
}
# factor_long presets (m, 3) -> m0, section 2.
FACTOR_LONG_PRESETS = {3072: 192, 1638: 171, 8364: 204}

SAFETENSORS_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16}


def prime_factors(m):
    fs, p = [], 2
    while p * p <= m:
        while m % p == 0:
            fs.append(p)
            m //= p
        p += 1
    if m > 1:
        fs.append(m)
    return fs


def factor_long(m, limit=192):
    """m if m <= limit or m is prime; else the largest product of a suffix of the ascending prime
    factors of m that is <= limit (presets first; m itself when no suffix fits)."""
    if m in FACTOR_LONG_PRESETS:
        return FACTOR_LONG_PRESETS[m]
    fs = prime_factors(m)
    if m <= limit or len(fs) == 1:
        return m
    best, prod = None, 1
    for f in reversed(fs):
        prod *= f
        if prod > limit:
            break
        best = prod
    # No suffix fits (largest prime factor > limit, e.g. 394 = 2*197): one block of m rows,
    # as for a prime m (a choice of this script; section 2 does not cover the case).
    return m if best is None else best


def fc_split(n):
    """(num_split, size_split) for a fully connected row of n inputs."""
    if n in FC_TABLE:
        return FC_TABLE[n]
    m = -(-n // 3)
    m0 = factor_long(m)
    return m // m0, m0


def pow2(c):
    """Nearest power of two (linear domain, ties to the smaller power), clipped to MAX_C; 0 stays 0."""
    mag = np.abs(c)
    nz = mag > 0
    v = mag[nz]
    e = np.ceil(np.log2(v))
    lo = np.exp2(e - 1)
    hi = np.exp2(e)
    q = np.where(v - lo <= hi - v, lo, hi)
    out = np.zeros_like(mag)
    out[nz] = np.minimum(q, MAX_C)
    return np.sign(c) * out


def core_decompose(a0, iters, thr):
    """a0: (m0, 3) block. Returns Ce (m0, 3), B (3, 3), number of B/C steps run."""
    a = a0.T  # (3, m0)
    bt = np.eye(3, dtype=a.dtype)
    ct = a.copy()
    cq_prev = None
    steps = 0
    for i in range(iters - 1):
        cq = pow2(ct)
        if i >= 1 and np.linalg.norm(cq - cq_prev) <= TOL:
            break
        cq_prev = cq
        bt = np.linalg.lstsq(cq.T, a.T, rcond=RCOND)[0].T
        ct = np.linalg.lstsq(bt, a, rcond=RCOND)[0]
        ct[np.abs(ct) < thr] = 0
        steps += 1
    ct = pow2(ct)
    bt = np.linalg.lstsq(ct.T, a.T, rcond=RCOND)[0].T
    return ct.T, bt.T, steps


def _decompose_row(args):
    row, num_split, size_split, iters, thr = args
    blocks = row.reshape(num_split, size_split, 3)
    ce = np.empty_like(blocks)
    b = np.empty((num_split, 3, 3), dtype=row.dtype)
    steps = np.empty(num_split, dtype=np.int32)
    for k in range(num_split):
        ce[k], b[k], steps[k] = core_decompose(blocks[k], iters, thr)
    return ce, b, steps


def read_safetensors(path, name):
    with open(path, "rb") as f:
        hlen = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(hlen))
        if name not in header:
            names = sorted(k for k in header if k != "__metadata__")
            raise SystemExit(f"tensor {name!r} not in {path}; it has {len(names)} tensors, e.g. {names[:5]}")
        info = header[name]
        if info["dtype"] not in SAFETENSORS_DTYPES:
            raise SystemExit(f"tensor {name!r} has dtype {info['dtype']}; supported: {sorted(SAFETENSORS_DTYPES)}")
        start, end = info["data_offsets"]
        f.seek(8 + hlen + start)
        buf = f.read(end - start)
    arr = np.frombuffer(buf, dtype=np.dtype(SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<"))
    return arr.reshape(info["shape"]), info["dtype"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights")
    ap.add_argument("--tensor", required=True)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--threshold", type=float, default=1e-2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--out-npz")
    args = ap.parse_args()

    w_file, file_dtype = read_safetensors(args.weights, args.tensor)
    if w_file.ndim != 2:
        raise SystemExit(f"tensor {args.tensor!r} has shape {list(w_file.shape)}: only 2-D (fully connected) weights")
    dt = np.dtype(args.dtype)
    w = w_file.astype(dt)
    out_f, n = w.shape
    num_split, size_split = fc_split(n)
    n_pad = 3 * num_split * size_split
    if n_pad < n:
        raise SystemExit(f"split ({num_split}, {size_split}) covers {n_pad} < {n} inputs")
    wp = np.zeros((out_f, n_pad), dtype=dt)
    wp[:, :n] = w

    t0 = time.perf_counter()
    jobs = [(wp[o], num_split, size_split, args.iters, args.threshold) for o in range(out_f)]
    if args.workers > 1:
        with Pool(args.workers) as pool:
            res = pool.map(_decompose_row, jobs, chunksize=max(1, out_f // (4 * args.workers)))
    else:
        res = [_decompose_row(j) for j in jobs]
    seconds = time.perf_counter() - t0

    ce = np.stack([r[0] for r in res])  # [out, blocks, rows, 3]
    b = np.stack([r[1] for r in res])  # [out, blocks, 3, 3]
    steps = np.stack([r[2] for r in res])  # [out, blocks]

    w_hat = np.einsum("obrk,obkj->obrj", ce.astype(np.float64), b.astype(np.float64)).reshape(out_f, n_pad)[:, :n]
    w64 = w_file.astype(np.float64)
    rel_error = float(np.linalg.norm(w64 - w_hat) / np.linalg.norm(w64))

    nz = ce != 0
    real_rows = -(-n // 3)  # Ce rows (in the row-major reshape) that hold at least one real weight
    ce_rows = ce.reshape(out_f, num_split * size_split, 3)
    mags = np.unique(np.abs(ce[nz]))
    n_mag = int(mags.size)
    c_bit = (math.ceil(math.log2(n_mag)) if n_mag > 1 else 0) + 1
    density = float(nz.mean())
    bits = c_bit * int(nz.sum()) + ce.size + 8 * b.size
    report = {
        "tensor": args.tensor,
        "shape": [out_f, n],
        "file_dtype": file_dtype,
        "compute_dtype": args.dtype,
        "num_split": num_split,
        "size_split": size_split,
        "padded_inputs": n_pad,
        "iters": args.iters,
        "threshold": args.threshold,
        "tol": TOL,
        "rcond": RCOND,
        "max_c": MAX_C,
        "rel_error": rel_error,
        "ce_density_incl_padding": density,
        "ce_density_real_rows": float((ce_rows[:, :real_rows] != 0).mean()),
        "ce_row_zero_fraction": float((~ce_rows.any(axis=2)).mean()),
        "distinct_abs_ce": n_mag,
        "abs_ce_exponents": [int(round(math.log2(v))) for v in mags],
        "c_bit": c_bit,
        "bits_per_weight": bits / (out_f * n),
        "bc_steps_mean": float(steps.mean()),
        "bc_steps_max": int(steps.max()),
        "blocks_converged_early": int((steps < args.iters - 1).sum()),
        "workers": args.workers,
        "seconds": round(seconds, 3),
    }
    if args.out_npz:
        np.savez(
            args.out_npz, ce=ce, b=b, iters=steps, shape=np.array([out_f, n]),
            split=np.array([num_split, size_split]), threshold=args.threshold, iternum=args.iters,
        )
        report["out_npz"] = args.out_npz
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
