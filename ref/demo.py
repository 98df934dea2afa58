"""``srmac demo``: error of RN, RZ and SR in long E5M2 x E5M2 -> E6M5 dot products.

For chain lengths n = 16 .. 4096 and two data distributions, many independent
dot products run through the reference matmul of :mod:`ref.chain` in each rounding
mode (RN, RZ, sr_lazy and sr_eager with r = 4 and with r = required_rbits(n)),
and their error is measured against the exact sum.

How the work is vectorised (the reference model loops over k in Python, so
the cost is ~0.3-0.5 ms per step whatever the number of chains):

* One ``matmul(A, B)`` with A of shape (M, K) and B of shape (K, N) runs M*N
  independent chains ``C[i, j]``, each with its own PE generator (i, j).
  Rows of A are the "positive" (a in [0, 1)) or "zero-mean" (a in [-1, 1))
  data, columns of B are b in [0, 1); the products a*b are then positive or
  symmetric about zero.
* Every length n is a prefix of the same chains: ``matmul`` continues a chain
  from ``C`` (the accumulator) and ``state`` (the generators), so one pass over
  k = 0 .. n_max - 1 records the result at every checkpoint n, bit-identical to
  separate chains of length n.

Exactness of the reference sum: every E5M2 value is an integer multiple of
2**-16 (its smallest subnormal) and here |a|, |b| <= 1, so ``a * 2**16`` is an
integer below 2**17 and the products, scaled by 2**32, are integers below
2**34; n <= 2**12 of them sum below 2**46. The exact sums are therefore
computed in int64 integer arithmetic (checked at run time), not in floating point.

Error measure: ``|computed - exact| / sum_k |a_k b_k|``, the quantity that
rounding-error bounds control (n*u for RN, about sqrt(n)*u for SR); it is the
relative error for positive data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .chain import matmul_reference
from .cli import check_outputs, table
from .codec import decode, encode
from .config import MacConfig, required_rbits
from .dispatch import matmul
from .formats import E5M2, E6M5
from .outputs import write_csv
from .plotting import save_figure, subplots

__all__ = ["run", "DemoResult", "SERIES", "DISTRIBUTIONS", "FULL_NS", "QUICK_NS"]

IN_FMT, ACC_FMT = E5M2, E6M5
FULL_NS = [2**k for k in range(4, 13)]
QUICK_NS = [2**k for k in range(4, 8)]
#: name -> lower bound of the uniform distribution of a (b is always U[0, 1)).
DISTRIBUTIONS = {"positive": 0.0, "zero-mean": -1.0}
#: Table / plot series: (label, rounding, rbits), rbits "req" = required_rbits(n).
SERIES = [
    ("rn", "rn", None),
    ("rz", "rz", None),
    ("sr_lazy r=4", "sr_lazy", 4),
    ("sr_eager r=4", "sr_eager", 4),
    ("sr_lazy r=req", "sr_lazy", "req"),
    ("sr_eager r=req", "sr_eager", "req"),
    ("sr_eager r=12", "sr_eager", 12),  # near-ideal SR: separates SR itself from the few-bit bias
]
#: Unit roundoff of RN in the accumulator: 2**-p.
UNIT_ROUNDOFF = 2.0 ** -ACC_FMT.precision
_SCALE_BITS = -(IN_FMT.emin - IN_FMT.man_bits)  # 16: E5M2 values are multiples of 2**-16


@dataclass
class DemoResult:
    rows: list[dict] = field(default_factory=list)
    report: str = ""
    csv_path: Path | None = None
    png_path: Path | None = None
    seconds: float = 0.0


def _runs(ns):
    """(rounding, rbits, n_stop): each configuration once, run only as far as it is needed."""
    n_max = max(ns)
    runs = [("rn", None, n_max), ("rz", None, n_max)]
    for mode in ("sr_lazy", "sr_eager"):
        stop = {4: n_max, 12: n_max} if mode == "sr_eager" else {4: n_max}
        for n in ns:
            r = required_rbits(n)
            stop[r] = max(stop.get(r, 0), n)
        runs += [(mode, r, stop[r]) for r in sorted(stop)]
    return runs


def _data(seed, rows_per_dist, cols, n_max):
    """E5M2 codes: A (len(DISTRIBUTIONS) * rows, n_max), B (n_max, cols), RN-quantised uniforms."""
    rng = np.random.default_rng(seed)
    A = np.vstack([rng.uniform(lo, 1.0, (rows_per_dist, n_max)) for lo in DISTRIBUTIONS.values()])
    B = rng.uniform(0.0, 1.0, (n_max, cols))
    return encode(A, IN_FMT), encode(B, IN_FMT)


def _scaled_ints(codes):
    """Values * 2**16 as exact int64 (checked: integral and |v| <= 2**17)."""
    v = decode(codes, IN_FMT) * 2.0**_SCALE_BITS
    if not (np.all(np.isfinite(v)) and np.all(v == np.round(v)) and np.max(np.abs(v)) <= 2**17):
        raise ValueError("demo data must be finite E5M2 values with |v| <= 2 (exact int64 sums)")
    return v.astype(np.int64)


def _exact_prefix(A, B, ns):
    """{n: (exact sum, sum of |products|)} as float64 arrays of the (M, N) chains.

    Integer arithmetic on values scaled by 2**32; the final conversion to float64
    rounds once (relative 2**-53), far below the errors measured.
    """
    Ai, Bi = _scaled_ints(A), _scaled_ints(B)
    s = np.zeros((Ai.shape[0], Bi.shape[1]), np.int64)
    t = np.zeros_like(s)
    out, k0 = {}, 0
    for n in ns:
        s = s + Ai[:, k0:n] @ Bi[k0:n]
        t = t + np.abs(Ai[:, k0:n]) @ np.abs(Bi[k0:n])
        k0 = n
        out[n] = (s.astype(np.float64) * 2.0**-(2 * _SCALE_BITS),
                  t.astype(np.float64) * 2.0**-(2 * _SCALE_BITS))
    return out


def _matmul_fn(backend):
    if backend == "reference":
        return matmul_reference  # the readable loop over k
    if backend == "auto":
        return matmul  # may dispatch to the compiled path (the same codes)
    raise ValueError(f"demo backend must be 'reference' or 'auto', got {backend!r}")


def _chain_prefix(A, B, cfg, seed, ns, n_stop, bar, backend="auto"):
    """{n: accumulator codes} for every checkpoint n <= n_stop, continuing one pass of chains."""
    mm = _matmul_fn(backend)
    z = state = None
    out, k0 = {}, 0
    for n in ns:
        if n > n_stop:
            break
        z, state = mm(A[:, k0:n], B[k0:n], cfg, z, seed=seed, state=state, return_state=True)
        out[n] = z
        if bar is not None:
            bar.update(n - k0)
        k0 = n
    return out


def compute(ns, seeds, rows_per_dist, cols, progress=None, backend="auto"):
    """Signed errors (computed - exact) / sum|a*b| per (distribution, rounding, rbits, n).

    Each value is a 1-D array over all chains of all seeds.
    """
    from tqdm import tqdm

    runs = _runs(ns)
    total = len(seeds) * sum(stop for _, _, stop in runs)
    errs: dict[tuple, list] = {}
    disable = {True: False, False: True}.get(progress)  # None: only on a terminal
    with tqdm(total=total, unit="MAC step", desc="srmac demo", disable=disable, leave=False) as bar:
        for seed in seeds:
            A, B = _data(seed, rows_per_dist, cols, max(ns))
            exact = _exact_prefix(A, B, ns)
            for rounding, r, n_stop in runs:
                cfg = MacConfig(IN_FMT, ACC_FMT, rounding, r)
                for n, z in _chain_prefix(A, B, cfg, seed, ns, n_stop, bar, backend).items():
                    s, t = exact[n]
                    e = (decode(z, ACC_FMT) - s) / np.where(t > 0, t, 1.0)
                    for d, name in enumerate(DISTRIBUTIONS):
                        rows = slice(d * rows_per_dist, (d + 1) * rows_per_dist)
                        errs.setdefault((name, rounding, r, n), []).append(e[rows].ravel())
    return {k: np.concatenate(v) for k, v in errs.items()}


def _series_rbits(r, n):
    return required_rbits(n) if r == "req" else r


def summarise(errs, ns):
    """CSV rows: one per (distribution, n, series): mean / median / p90 / max of |error|
    and the mean signed error (the bias; negative = toward zero for positive sums)."""
    rows = []
    for dist in DISTRIBUTIONS:
        for n in ns:
            for label, rounding, r in SERIES:
                signed = errs[(dist, rounding, _series_rbits(r, n), n)]
                e = np.abs(signed)
                rows.append({
                    "distribution": dist, "n": n, "series": label, "rounding": rounding,
                    "rbits": _series_rbits(r, n) or "", "chains": e.size,
                    "mean_err": float(e.mean()), "median_err": float(np.median(e)),
                    "p90_err": float(np.quantile(e, 0.9)), "max_err": float(e.max()),
                    "mean_signed_err": float(signed.mean()),
                })
    return rows


def _slope(ns, ys):
    """Least-squares exponent of y ~ n**s over the points with y > 0."""
    pts = [(math.log(n), math.log(y)) for n, y in zip(ns, ys, strict=True) if y > 0]
    if len(pts) < 2:
        return float("nan")
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    num = sum((x - mx) * (y - my) for x, y in pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return num / den


def format_report(rows, ns, seeds, chains_per_dist, backend="auto"):
    """The tables (mean error per n and series) and the growth exponents, as text."""

    labels = [s[0] for s in SERIES]
    out = [
        f"srmac demo: dot products in {IN_FMT.name} x {IN_FMT.name} -> {ACC_FMT.name} "
        f"(u = 2**-{ACC_FMT.precision} = {UNIT_ROUNDOFF:.4g}), ref.matmul backend={backend}",
        f"mean of |computed - exact| / sum|a*b| over {chains_per_dist} chains per cell "
        f"(seeds {', '.join(map(str, seeds))}); r=req is required_rbits(n)",
    ]
    by = {(r["distribution"], r["n"], r["series"]): r for r in rows}
    for dist, lo in DISTRIBUTIONS.items():
        out += ["", f"{dist}: a ~ U[{lo:g}, 1), b ~ U[0, 1), quantised to {IN_FMT.name} (RN)"]
        body = [[n, required_rbits(n)] + [f"{by[(dist, n, lab)]['mean_err']:.3e}" for lab in labels]
                for n in ns]
        slopes = [_slope(ns, [by[(dist, n, lab)]["mean_err"] for n in ns]) for lab in labels]
        body.append(["slope", ""] + [f"{s:+.2f}" for s in slopes])
        out.append(table(["n", "req r", *labels], body, indent="  "))
    out += ["", "slope: exponent s of a fit err ~ n**s (1 for error growing like n*u, "
            "0.5 like sqrt(n)*u, ~0 once a sum stagnates or the error saturates)"]
    n = ns[-1]
    body = []
    for lab in labels:
        rs = [by[(d, n, lab)] for d in DISTRIBUTIONS]
        body.append([lab] + [c for r in rs
                             for c in (f"{r['mean_err']:.3e}", f"{r['mean_signed_err']:+.3e}")])
    heads = [h for d in DISTRIBUTIONS for h in (f"{d} |err|", f"{d} signed")]
    out += ["", f"at n = {n}: mean |error| and mean signed error (bias; < 0 is toward zero)",
            table(["series", *heads], body, indent="  ")]
    return "\n".join(out)


def plot(rows, ns, path: Path):
    fig, axes = subplots(1, len(DISTRIBUTIONS), figsize=(12, 4.4), sharey=True)
    styles = {"rn": "o-", "rz": "v-", "sr_lazy r=4": "s--", "sr_eager r=4": "^--",
              "sr_lazy r=req": "s-", "sr_eager r=req": "^-", "sr_eager r=12": "d:"}
    x = np.array(ns, dtype=float)
    for ax, dist in zip(axes, DISTRIBUTIONS, strict=True):
        for label, _, _ in SERIES:
            y = [next(r["mean_err"] for r in rows if (r["distribution"], r["n"], r["series"])
                      == (dist, n, label)) for n in ns]
            ax.loglog(x, y, styles[label], label=label, markersize=4)
        ax.loglog(x, np.minimum(x * UNIT_ROUNDOFF, 1), "k:", lw=1, label="min(n u, 1)")
        ax.loglog(x, np.sqrt(x) * UNIT_ROUNDOFF, "k-.", lw=1, label="sqrt(n) u")
        ax.set_title(f"{dist} products")
        ax.set_xlabel("dot-product length n")
        ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("mean |error| / sum |a b|")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center right", fontsize=8)
    fig.suptitle(f"{IN_FMT.name} x {IN_FMT.name} -> {ACC_FMT.name}: RN, RZ and stochastic rounding "
                 "(r=req: required_rbits(n))")
    # Fixed margins: tight_layout costs seconds on log axes.
    fig.subplots_adjust(left=0.07, right=0.87, bottom=0.12, top=0.86, wspace=0.06)
    save_figure(fig, path, dpi=120)


def run(out="build/demo", *, quick=False, seeds=None, ns=None, rows_per_dist=None, cols=None,
        progress=None, backend="auto") -> DemoResult:
    """Compute, print-ready report, and write ``demo.csv`` and ``demo.png`` under ``out``.

    ``quick`` uses n = 16 .. 128 and fewer chains (seconds). ``seeds``: an int
    (that many seeds 0, 1, ...) or a list. ``progress=False`` hides the bar
    (None: shown on a terminal only). ``backend``: ``"auto"`` calls
    :func:`ref.matmul` (which may dispatch to a compiled path); ``"reference"``
    forces the readable loop of :mod:`ref.chain`. Both give the same codes.
    """
    t0 = time.perf_counter()
    ns = list(ns or (QUICK_NS if quick else FULL_NS))
    if seeds is None:
        seeds = 1 if quick else 3
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    rows_per_dist = rows_per_dist or (4 if quick else 16)
    cols = cols or (4 if quick else 16)
    if max(ns) > 2**14:
        raise ValueError(f"n up to 2**14 keeps the exact int64 sums safe; got n = {max(ns)}")
    _matmul_fn(backend)  # check the name before the long run
    out = Path(out)
    (csv_path, png_path), _ = check_outputs(
        [(out / "demo.csv", "demo table"), (out / "demo.png", "demo plot")],
        [(out, "demo output folder")])
    errs = compute(ns, seeds, rows_per_dist, cols, progress, backend)
    rows = summarise(errs, ns)
    res = DemoResult(rows=rows, csv_path=csv_path, png_path=png_path)
    res.report = format_report(rows, ns, seeds, len(seeds) * rows_per_dist * cols, backend)
    write_csv(csv_path, rows)
    plot(rows, ns, png_path)
    res.seconds = time.perf_counter() - t0
    return res
