"""How many random bits does SR need? Error of RN, RZ and SR_{p,r} in long MAC chains.

The theory (El Arar, Fasi, Filip, Mikaitis, arXiv 2408.03069): SR with r
random bits is biased (below ``2**-r`` ulp per rounding, toward zero), and a
chain of n roundings has error bounds of the form
``O(sqrt(n) u_p) + O(n u_{p+r})``; the bias term stops mattering once
``2**r >= sqrt(n)``, i.e. ``r = ceil(log2(n) / 2)`` (:func:`ref.required_rbits`).
This module measures it on a given format pair and chain length.

Experiment (:func:`sweep`)
--------------------------
For each distribution (:data:`DISTRIBUTIONS`), one set of chains of length
``n_max`` runs through :func:`ref.matmul` in every configuration: ``rn``,
``rz``, and ``sr_lazy`` / ``sr_eager`` with r = 1 .. rmax and r =
:data:`FULL_R` (30 bits: bias below ``2**-30`` ulp, the full-precision SR
limit). Every shorter length n (powers of two) is a prefix of the same
chains: ``matmul`` continues from the accumulators and the generator states
(``C``, ``state``), bit-identical to separate chains of length n.

* Layout: ``A`` is (M, n) data rows, ``B`` is (n, N) with N = min(runs, 128)
  columns (one kernel tile), so ``M * N >= runs`` chains, each PE (i, j) with
  its own generator. Summations ("uniform", "zeromean") use ``B = 1.0``: the
  N chains of a row add the same data with independent random bits. Dot
  products ("dot", "dotzm") use random ``B``: chain (i, j) is row i of A
  against column j of B.
* Error of one chain: ``(computed - exact) / sum_k |a_k b_k|`` (the relative
  error for positive data; for zero-mean data the natural scale of the
  rounding errors). Per cell: mean and max of its absolute value over the
  chains, and the bias = mean signed error with its standard error.
* Exact sums: an input-format value is an integer multiple of its quantum
  ``q = 2**(emin - man_bits)``, so products scaled by ``q**-2`` are integers
  and the sums are exact int64 (bounded below 2**62, checked). The only
  rounding is the final conversion to float64 (relative 2**-53).

Knee (:func:`knee`)
-------------------
The measured knee of a (distribution, n, rounding) curve is the smallest r in
1 .. rmax such that the mean error at r **and at every larger r up to rmax**
is within ``tol`` (default 10 %) of the mean error of full-precision SR of
the same rounding, on the same data and random streams. "Every larger r"
keeps one lucky point from ending the curve early. Why 10 %: if the error of
SR_r is the full-SR error plus a bias b, and the full-SR error is roughly
normal with deviation s, the mean absolute error exceeds the unbiased one by
10 % at about b = 0.46 s: beyond the knee the bias is at most about half the
random error, so more bits buy less than 10 %. 10 % is also well above the
statistical noise of the ratio at a few thousand chains (about 1 %, and
smaller still since every r reuses the same data and random words).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .cli import add_mac_arguments, check_outputs, mac_from_args
from .codec import decode, encode
from .config import MAX_RBITS, MacConfig, required_rbits
from .dispatch import matmul
from .formats import parse_format
from .mac import mac
from .outputs import check_writable_dir
from .outputs import write_csv as _write_csv
from .plotting import save_figure, subplots

__all__ = [
    "DISTRIBUTIONS", "FULL_R", "SweepSpec", "SweepResult", "make_data", "exact_prefix",
    "exact_fraction", "chain_prefix", "sweep", "knee", "knee_table", "format_knee_table",
    "write_csv", "plot", "sr_bias_exact", "add_sweep_arguments", "run_sweep",
]

#: Random bits of the "full precision" SR reference (bias < 2**-30 ulp).
FULL_R = MAX_RBITS
#: name -> (what it is, low end of the uniform a, low end of b or None for b = 1.0).
DISTRIBUTIONS = {
    "uniform": ("summation of x ~ U[0, 1)", 0.0, None),
    "zeromean": ("summation of x ~ U[-1, 1)", -1.0, None),
    "dot": ("dot product, a, b ~ U[0, 1)", 0.0, 0.0),
    "dotzm": ("dot product, a ~ U[-1, 1), b ~ U[0, 1)", -1.0, 0.0),
}
DEFAULT_DISTS = ("uniform", "zeromean", "dot")
#: Columns of B per matmul: one tile of the compiled kernel.
COLS = 128
_MODES = ("rn", "rz", "sr_lazy", "sr_eager")


@dataclass(frozen=True)
class SweepSpec:
    """What to measure: formats, chain lengths (powers of two), r = 1 .. rmax, chains, data."""

    in_fmt: object = "e5m2"
    acc_fmt: object = "e6m5"
    ns: tuple = tuple(2**k for k in range(4, 15))
    rmax: int = 16
    runs: int = 4096
    dists: tuple = DEFAULT_DISTS
    seed: int = 1
    modes: tuple = _MODES

    def configs(self):
        """(rounding, rbits) of every chain run: rn, rz, then r = 1..rmax and FULL_R per SR mode."""
        out = []
        for m in self.modes:
            if m in ("rn", "rz"):
                out.append((m, None))
            else:
                out += [(m, r) for r in range(1, self.rmax + 1)] + [(m, FULL_R)]
        return out

    def shape(self):
        """(M, N): data rows of A and columns of B; M * N >= runs chains."""
        n_cols = min(self.runs, COLS)
        return -(-self.runs // n_cols), n_cols


@dataclass
class SweepResult:
    spec: SweepSpec
    rows: list = field(default_factory=list)  # one dict per (dist, n, rounding, rbits)
    knees: list = field(default_factory=list)  # see knee_table


# ---- data and exact sums ---------------------------------------------------------------

def make_data(dist: str, in_fmt, rows: int, cols: int, n: int, seed: int):
    """Input codes ``A`` (rows, n) and ``B`` (n, cols) of distribution ``dist`` (RN-quantised)."""
    if dist not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {dist!r}: use one of {', '.join(DISTRIBUTIONS)}")
    in_fmt = parse_format(in_fmt)
    _, lo_a, lo_b = DISTRIBUTIONS[dist]
    rng = np.random.default_rng([seed, list(DISTRIBUTIONS).index(dist)])
    A = encode(rng.uniform(lo_a, 1.0, (rows, n)), in_fmt)
    if lo_b is None:
        B = encode(np.ones((n, cols)), in_fmt)
    else:
        B = encode(rng.uniform(lo_b, 1.0, (n, cols)), in_fmt)
    return A, B


def _scaled(codes, in_fmt):
    """Values / q as exact int64 (q = the format's smallest subnormal step)."""
    qbits = in_fmt.man_bits - in_fmt.emin
    v = decode(codes, in_fmt)
    if not np.all(np.isfinite(v)):
        raise ValueError("analysis data must be finite input-format values")
    s = np.ldexp(v, qbits)
    if np.max(np.abs(s), initial=0.0) >= 2.0**53 or not np.all(s == np.round(s)):
        raise ValueError(f"{in_fmt.name} values are not exact integers times 2**-{qbits}")
    return s.astype(np.int64), qbits


def exact_prefix(A, B, in_fmt, ns):
    """``{n: (exact, l1)}``: float64 (M, N) arrays of ``sum_k a_k b_k`` and ``sum_k |a_k b_k|``.

    The sums are exact int64 over products scaled by ``q**-2``; raises
    ValueError when they could exceed 2**62 (use smaller data or shorter chains).
    """
    in_fmt = parse_format(in_fmt)
    Ai, qbits = _scaled(A, in_fmt)
    Bi, _ = _scaled(B, in_fmt)
    bound = float(np.max(np.abs(Ai), initial=0)) * float(np.max(np.abs(Bi), initial=0)) * max(ns)
    if bound >= 2.0**62:
        raise ValueError(f"exact int64 sums could overflow (bound {bound:.3g}): use smaller data or --n-max")
    s = np.zeros((Ai.shape[0], Bi.shape[1]), np.int64)
    t = np.zeros_like(s)
    out, k0 = {}, 0
    for n in sorted(ns):
        s = s + Ai[:, k0:n] @ Bi[k0:n]
        t = t + np.abs(Ai[:, k0:n]) @ np.abs(Bi[k0:n])
        out[n] = (np.ldexp(s.astype(np.float64), -2 * qbits), np.ldexp(t.astype(np.float64), -2 * qbits))
        k0 = n
    return out


def exact_fraction(a_codes, b_codes, in_fmt) -> Fraction:
    """``sum_k a_k b_k`` of one chain as an exact Fraction (the slow oracle for tests)."""
    in_fmt = parse_format(in_fmt)
    va, vb = decode(np.asarray(a_codes), in_fmt), decode(np.asarray(b_codes), in_fmt)
    return sum((Fraction(float(x)) * Fraction(float(y)) for x, y in zip(va, vb, strict=True)), Fraction(0))


# ---- chains ------------------------------------------------------------------------------

def chain_prefix(A, B, cfg: MacConfig, seed: int, ns, progress=None):
    """``{n: accumulator codes (M, N)}`` at every checkpoint n, in one pass of ``ref.matmul``."""
    z = state = None
    out, k0 = {}, 0
    for n in sorted(ns):
        if cfg.is_sr:
            z, state = matmul(A[:, k0:n], B[k0:n], cfg, z, seed=seed, state=state, return_state=True)
        else:
            z = matmul(A[:, k0:n], B[k0:n], cfg, z)
        out[n] = z
        if progress is not None:
            progress.update(A.shape[0] * B.shape[1] * (n - k0))
        k0 = n
    return out


def _check_spec(spec: SweepSpec) -> SweepSpec:
    in_fmt, acc_fmt = parse_format(spec.in_fmt), parse_format(spec.acc_fmt)
    ns = tuple(sorted(set(int(n) for n in spec.ns)))
    if not ns or any(n < 1 or n & (n - 1) for n in ns):
        raise ValueError(f"chain lengths must be powers of two >= 1, got {list(spec.ns)}")
    if not 1 <= spec.rmax <= 24:
        raise ValueError(f"rmax must be in 1..24, got {spec.rmax}")
    if spec.runs < 2:
        raise ValueError(f"runs must be >= 2 chains, got {spec.runs}")
    for d in spec.dists:
        if d not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {d!r}: use one of {', '.join(DISTRIBUTIONS)}")
    for m in spec.modes:
        if m not in _MODES:
            raise ValueError(f"unknown rounding {m!r}: use one of {', '.join(_MODES)}")
    MacConfig(in_fmt, acc_fmt, "sr_lazy", FULL_R)  # format limits, one clear error
    return SweepSpec(in_fmt, acc_fmt, ns, spec.rmax, spec.runs, tuple(spec.dists), spec.seed,
                     tuple(spec.modes))


def sweep(spec: SweepSpec, progress: bool = False, tol: float = 0.10) -> SweepResult:
    """Run every configuration of ``spec`` on every distribution; one row per cell.

    Row keys: dist, n, rounding, rbits ("" for rn/rz), chains, mean_err,
    max_err, bias, bias_se (errors relative to ``sum |a_k b_k|``). ``result.knees``:
    :func:`knee_table` with tolerance ``tol``.
    """
    spec = _check_spec(spec)
    M, N = spec.shape()
    configs = spec.configs()
    n_max = max(spec.ns)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(spec.dists) * len(configs) * M * N * n_max, unit="MAC", unit_scale=True,
                   desc="rbits sweep", file=sys.stderr)
    result = SweepResult(spec)
    try:
        for dist in spec.dists:
            A, B = make_data(dist, spec.in_fmt, M, N, n_max, spec.seed)
            exact = exact_prefix(A, B, spec.in_fmt, spec.ns)
            for rounding, r in configs:
                cfg = MacConfig(spec.in_fmt, spec.acc_fmt, rounding, r)
                codes = chain_prefix(A, B, cfg, spec.seed, spec.ns, bar)
                for n in spec.ns:
                    s, l1 = exact[n]
                    got = decode(codes[n], spec.acc_fmt)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        err = ((got - s) / np.where(l1 > 0, l1, 1.0)).ravel()
                    result.rows.append(_cell(dist, n, rounding, r, err))
    finally:
        if bar is not None:
            bar.close()
    result.knees = knee_table(result.rows, spec, tol)
    return result


def _cell(dist, n, rounding, r, err):
    a = np.abs(err)
    return {
        "dist": dist, "n": n, "rounding": rounding, "rbits": "" if r is None else r,
        "chains": err.size, "mean_err": float(np.mean(a)), "max_err": float(np.max(a)),
        "bias": float(np.mean(err)), "bias_se": float(np.std(err, ddof=1) / math.sqrt(err.size)),
    }


# ---- knee ----------------------------------------------------------------------------

def knee(curve: dict, full: float, tol: float = 0.10):
    """Smallest r whose mean error, and that of every larger r in ``curve``, is <= (1 + tol) * full.

    ``curve`` maps r -> mean error. None when even the largest r misses.
    """
    best = None
    for r in sorted(curve, reverse=True):
        if curve[r] <= (1.0 + tol) * full:
            best = r
        else:
            break
    return best


def knee_table(rows, spec: SweepSpec, tol: float = 0.10):
    """One dict per (dist, n, SR rounding): knee, formula, difference, full-SR and RN error."""
    idx = {(c["dist"], c["n"], c["rounding"], c["rbits"]): c for c in rows}
    out = []
    for dist in spec.dists:
        for n in spec.ns:
            for m in spec.modes:
                if m not in ("sr_lazy", "sr_eager"):
                    continue
                full = idx[(dist, n, m, FULL_R)]["mean_err"]
                curve = {r: idx[(dist, n, m, r)]["mean_err"] for r in range(1, spec.rmax + 1)}
                k = knee(curve, full, tol)
                f = required_rbits(n)
                rn = idx.get((dist, n, "rn", ""))
                out.append({
                    "dist": dist, "n": n, "rounding": m, "knee": k, "formula": f,
                    "diff": None if k is None else k - f, "full_err": full,
                    "err_at_formula": curve.get(f), "rn_err": rn["mean_err"] if rn else None,
                })
    return out


def format_knee_table(knees, tol: float = 0.10) -> str:
    """Plain-text table: measured knee vs ceil(log2(n)/2), one line per (dist, n, rounding)."""
    head = ["dist", "n", "rounding", "knee", "ceil(log2 n/2)", "diff", "full-SR err",
            "err at formula", "RN err"]
    lines = []
    for k in knees:
        ratio = (f"{k['err_at_formula']:.3g} ({k['err_at_formula'] / k['full_err']:.2f}x)"
                 if k["err_at_formula"] is not None and k["full_err"] > 0 else "-")
        lines.append([
            k["dist"], str(k["n"]), k["rounding"], ">rmax" if k["knee"] is None else str(k["knee"]),
            str(k["formula"]), "-" if k["diff"] is None else f"{k['diff']:+d}", f"{k['full_err']:.3g}",
            ratio, "-" if k["rn_err"] is None else f"{k['rn_err']:.3g}",
        ])
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]

    def fmt(cells):
        return "  ".join(c.rjust(w) if i > 2 else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    agree = sum(1 for k in knees if k["diff"] is not None and abs(k["diff"]) <= 1)
    out = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines]
    out.append(f"knee = smallest r with mean error within {tol:.0%} of full-precision SR "
               f"(r = {FULL_R}) for that r and all larger; within one bit of the formula: "
               f"{agree} of {len(knees)}")
    return "\n".join(out)


# ---- output files ---------------------------------------------------------------------

def write_csv(rows, path) -> Path:
    """Write the sweep's rows (or knees) as CSV, atomically (:mod:`ref.outputs`)."""
    return _write_csv(path, rows)


def plot(result: SweepResult, out_dir, prefix: str = "rbits") -> list:
    """One PNG per distribution: mean error vs r (log scale), a curve per n, lazy and eager panels.

    Dotted lines: full-precision SR; circles: the measured knee; triangles at the
    bottom: ceil(log2(n)/2).
    """
    import matplotlib

    spec = result.spec
    out_dir = check_writable_dir(out_dir, "plot folder")
    idx = {(c["dist"], c["n"], c["rounding"], c["rbits"]): c for c in result.rows}
    knees = {(k["dist"], k["n"], k["rounding"]): k["knee"] for k in result.knees}
    sr_modes = [m for m in spec.modes if m.startswith("sr")]
    rs = list(range(1, spec.rmax + 1))
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(spec.ns)))
    paths = []
    for dist in spec.dists:
        fig, axes = subplots(1, len(sr_modes), figsize=(6 * len(sr_modes), 4.5), squeeze=False,
                                 sharey=True)
        for ax, m in zip(axes[0], sr_modes, strict=True):
            lo = math.inf
            for n, col in zip(spec.ns, colors, strict=True):
                ys = [idx[(dist, n, m, r)]["mean_err"] for r in rs]
                full = idx[(dist, n, m, FULL_R)]["mean_err"]
                lo = min(lo, full, *ys)
                ax.plot(rs, ys, "-", color=col, label=f"n = {n}")
                ax.axhline(full, color=col, ls=":", lw=0.8)
                k = knees.get((dist, n, m))
                if k is not None:
                    ax.plot([k], [idx[(dist, n, m, k)]["mean_err"]], "o", color=col, mfc="none", ms=9)
            for n, col in zip(spec.ns, colors, strict=True):
                ax.plot([required_rbits(n)], [lo / 1.6], "^", color=col, ms=7)
            ax.set_yscale("log")
            ax.set_xlabel("random bits r")
            ax.set_title(f"{m}: {spec.in_fmt.name} x {spec.in_fmt.name} -> {spec.acc_fmt.name}")
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel("mean |computed - exact| / sum|a b|")
        axes[0][-1].legend(fontsize=7, ncol=2)
        fig.suptitle(f"{DISTRIBUTIONS[dist][0]}: o = measured knee, ^ = ceil(log2(n)/2), "
                     f"dotted = full-precision SR (r = {FULL_R})", fontsize=9)
        fig.tight_layout()
        paths.append(save_figure(fig, out_dir / f"{prefix}_{dist}.png", dpi=110))
    return paths


# ---- exact bias of one SR rounding --------------------------------------------------------

def sr_bias_exact(z, a, b, cfg: MacConfig):
    """Exact expected error ``E_R[mac(z, a, b)] - (z + a*b)`` of each MAC, in ulps of the result.

    Enumerates every random word (``2**cfg.rand_bits`` of them: R and, for
    eager, B), so it is deterministic. ``z`` accumulator codes, ``a``, ``b``
    input codes (1-D, same length). Returns a float64 array (exact to float64
    rounding of the final ratio); the ulp is that of the exact sum's binade.
    """
    if not cfg.is_sr:
        raise ValueError(f"sr_bias_exact needs an SR rounding, got {cfg.rounding!r}")
    if cfg.rand_bits > 16:
        raise ValueError(f"enumerating 2**{cfg.rand_bits} random words is too many: use rbits <= 14")
    z, a, b = (np.asarray(x, dtype=np.int64).reshape(-1, 1) for x in (z, a, b))
    words = np.arange(1 << cfg.rand_bits, dtype=np.int64).reshape(1, -1)
    shape = (z.shape[0], words.shape[1])  # one row of outcomes per MAC, one column per word
    out = mac(np.broadcast_to(z, shape), a, b, cfg, rand=np.broadcast_to(words, shape))
    acc, inf = cfg.acc_fmt, cfg.in_fmt
    vz, va, vb = decode(z[:, 0], acc), decode(a[:, 0], inf), decode(b[:, 0], inf)
    res = np.empty(z.shape[0])
    for i in range(z.shape[0]):
        exact = Fraction(float(vz[i])) + Fraction(float(va[i])) * Fraction(float(vb[i]))
        if exact == 0:
            res[i] = 0.0
            continue
        vals, counts = np.unique(out[i], return_counts=True)
        mean = sum((Fraction(float(v)) * int(c) for v, c in zip(decode(vals, acc), counts, strict=True)),
                   Fraction(0)) / words.shape[1]
        e = max(_floor_log2(abs(exact)), acc.emin)
        res[i] = float((mean - exact) / Fraction(2) ** (e - acc.man_bits))
    return res


def _floor_log2(x: Fraction) -> int:
    """floor(log2(x)) of a positive Fraction, exactly."""
    e = x.numerator.bit_length() - x.denominator.bit_length()
    return e if Fraction(2) ** e <= x else e - 1


# ---- command line --------------------------------------------------------------------------

DEFAULT_OUT = "build/rbits"
_QUICK = dict(n_min=16, n_max=256, rmax=8, runs=512, dists=("uniform",))


def add_sweep_arguments(parser, sweep_group=None):
    """Add the ``srmac rbits --sweep`` options to ``parser``.

    ``--sweep`` goes into ``sweep_group`` when given (e.g. the verb's
    mutually exclusive group with ``--n``), else into ``parser``. Numbers stay
    strings here and are checked by :func:`run_sweep` (one-line errors).
    """
    (sweep_group or parser).add_argument(
        "--sweep", action="store_true",
        help="measure the error of RN, RZ and SR with r = 1..rmax bits against the exact sum and "
             "find the knee where more bits stop helping (writes CSV + plots)")
    # the formats of the chains (every rounding and r = 1..rmax are swept)
    add_mac_arguments(parser, spec=False, rounding=False, rbits=False)
    g = parser.add_argument_group("sweep options")
    g.add_argument("--n-min", metavar="N", help="shortest chain, a power of two (default: 16)")
    g.add_argument("--n-max", metavar="N", help="longest chain, a power of two (default: 16384)")
    g.add_argument("--rmax", metavar="R", help="largest r swept (default: 16)")
    g.add_argument("--runs", metavar="K", help="chains per cell (default: 4096)")
    g.add_argument("--dist", metavar="LIST",
                   help=f"comma list of {', '.join(DISTRIBUTIONS)} or 'all' "
                        f"(default: {','.join(DEFAULT_DISTS)})")
    g.add_argument("--tol", metavar="T", help="knee tolerance over full-precision SR (default: 0.10)")
    g.add_argument("--out", dest="sweep_out", default=None, metavar="DIR",
                   help="output folder for rbits.csv, rbits_knee.csv, rbits_<dist>.png (default: build/rbits)")
    g.add_argument("--seed", metavar="S", help="data and PRNG seed (default: 1)")
    g.add_argument("--quick", action="store_true",
                   help="small sweep for a smoke test: n = 16..256, r <= 8, 512 chains, uniform only")
    return g


def _int(text, what, default, lo, hi=None):
    if text is None:
        return default
    try:
        v = int(str(text).strip().replace("_", ""), 0)
    except ValueError:
        raise ValueError(f"cannot read {what} {text!r}: expected an integer") from None
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{what} must be in {lo}..{hi if hi is not None else 'inf'}, got {v}")
    return v


def _pow2(text, what, default):
    v = _int(text, what, default, 1, 2**20)
    if v & (v - 1):
        raise ValueError(f"{what} must be a power of two, got {v}")
    return v


def spec_from_args(args) -> tuple[SweepSpec, float]:
    """The :class:`SweepSpec` and knee tolerance of parsed ``add_sweep_arguments`` options."""
    q = _QUICK if getattr(args, "quick", False) else {}
    n_min = _pow2(args.n_min, "--n-min", q.get("n_min", 16))
    n_max = _pow2(args.n_max, "--n-max", q.get("n_max", 2**14))
    if n_min > n_max:
        raise ValueError(f"--n-min {n_min} is larger than --n-max {n_max}")
    rmax = _int(args.rmax, "--rmax", q.get("rmax", 16), 1, 24)
    runs = _int(args.runs, "--runs", q.get("runs", 4096), 2, 10**7)
    seed = _int(args.seed, "--seed", 1, 0, 2**32 - 1)
    if args.dist is None:
        dists = q.get("dists", DEFAULT_DISTS)
    elif args.dist.strip() == "all":
        dists = tuple(DISTRIBUTIONS)
    else:
        dists = tuple(d.strip() for d in args.dist.split(",") if d.strip())
        for d in dists:
            if d not in DISTRIBUTIONS:
                raise ValueError(f"unknown --dist {d!r}: use a comma list of {', '.join(DISTRIBUTIONS)} or all")
    tol = 0.10
    if args.tol is not None:
        try:
            tol = float(args.tol)
        except ValueError:
            raise ValueError(f"cannot read --tol {args.tol!r}: expected a number like 0.1") from None
        if not 0 < tol < 10:
            raise ValueError(f"--tol must be in (0, 10), got {tol}")
    ns = tuple(2**k for k in range(n_min.bit_length() - 1, n_max.bit_length()))
    mac = mac_from_args(args)
    spec = SweepSpec(mac.in_fmt, mac.acc_fmt, ns, rmax, runs, dists, seed)
    return _check_spec(spec), tol


def run_sweep(args) -> int:
    """``srmac rbits --sweep``: run the sweep, print the knee table, write CSVs and plots."""
    spec, tol = spec_from_args(args)
    out = Path(args.sweep_out or DEFAULT_OUT)
    names = ["rbits.csv", "rbits_knee.csv", *(f"rbits_{d}.png" for d in spec.dists)]
    check_outputs([(out / n, "sweep output") for n in names], [(out, "--out")])  # before the sweep
    M, N = spec.shape()
    print(f"rbits sweep: {spec.in_fmt.name} x {spec.in_fmt.name} -> {spec.acc_fmt.name}, "
          f"n = {spec.ns[0]}..{spec.ns[-1]}, r = 1..{spec.rmax} and {FULL_R} (full), "
          f"{M * N} chains per cell ({M} data rows x {N} columns), dists {', '.join(spec.dists)}, "
          f"seed {spec.seed}")
    result = sweep(spec, progress=sys.stderr.isatty(), tol=tol)
    print(format_knee_table(result.knees, tol))
    csv_path = write_csv(result.rows, out / "rbits.csv")
    knee_path = write_csv(result.knees, out / "rbits_knee.csv")
    pngs = plot(result, out)
    print(f"wrote {csv_path}, {knee_path}, " + ", ".join(str(p) for p in pngs))
    return 0


def main(argv=None) -> int:
    """``python -m ref.analysis [options]``: the sweep without the ``srmac`` front end."""
    p = argparse.ArgumentParser(prog="python -m ref.analysis", description=run_sweep.__doc__)
    add_sweep_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_sweep(args)
    except ValueError as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
