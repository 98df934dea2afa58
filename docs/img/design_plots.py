"""Regenerate the figures of docs/design.md (docs/img/design_*.png).

Every probability here is computed by running the golden model over *all*
random words (no sampling, no formula), so the figures double as a check of
``ref``: the staircases must follow ``floor(f * 2**r) / 2**r``.

Run from the repository root (about 5 s):

    .venv/bin/python docs/img/design_plots.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import ref  # noqa: E402

OUT = Path(__file__).resolve().parent
STEPS = 512  # fractions f = i / STEPS, exact in float64


def sr_up_probability(fmt, r: int, f: np.ndarray) -> np.ndarray:
    """P(round up) of ``encode(..., 'sr', rbits=r)`` at x = (2**man + f) ulp, over all R."""
    ulp = 2.0 ** -fmt.man_bits  # binade [1, 2)
    x = 1.0 + f * ulp
    lo = int(ref.encode(1.0, fmt))
    R = np.arange(1 << r)
    codes = ref.encode(np.repeat(x, R.size), fmt, "sr", rbits=r, rand=np.tile(R, x.size))
    return (codes.reshape(x.size, R.size) > lo).mean(axis=1)


def plot_sr_probability(path: Path) -> None:
    fmt = ref.E6M5
    f = np.arange(STEPS + 1)[:-1] / STEPS
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for r in (1, 2, 3, 4):
        p = sr_up_probability(fmt, r, f)
        ax1.step(f, p, where="post", label=f"r = {r}")
        ax2.step(f, (p - f), where="post", label=f"r = {r}")
    ax1.plot(f, f, "k--", lw=0.8, label="exact SR (p = f)")
    ax1.set_xlabel("fraction f of |x| between its neighbours (ulp)")
    ax1.set_ylabel("P(round up)")
    ax1.set_title("SR$_{p,r}$: P(up) = floor(f 2$^r$) / 2$^r$")
    ax1.legend(fontsize=8)
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set_xlabel("fraction f (ulp)")
    ax2.set_ylabel("bias E[round(x)] - x  (ulp)")
    ax2.set_title("bias is toward zero and > -2$^{-r}$ ulp")
    ax2.legend(fontsize=8)
    fig.suptitle("Limited-precision SR, computed by ref.encode over all R (E6M5, binade [1, 2))")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def eager_up_probability(cfg, z_code: int, a_code: int, b_code: int) -> float:
    """P(up) of one MAC over all ``2**rand_bits`` random words."""
    words = np.arange(1 << cfg.rand_bits)
    out = ref.mac(np.full(words.size, z_code), a_code, b_code, cfg, rand=words)
    vals = ref.decode(out, cfg.acc_fmt)
    return float((vals > vals.min()).mean()) if np.unique(vals).size > 1 else 0.0


def plot_eager_vs_lazy(path: Path) -> None:
    """P(up) against the exact fraction, for results in the anchor binade (j=0) and above (j=1).

    E4M3 x E4M3 -> E6M5, r = 2: z sweeps the accumulator codes of [1, 4) and
    the product is 1.875 * (m / 8) * 2**-s for odd m = 9..15, s = 2..7 (up to an 8-bit significand,
    so the exact sum is rarely on the grid). Both addends are positive, so the
    anchor is z's exponent and the sum lands either in it or one binade above.
    """
    r = 2
    lazy = ref.MacConfig(ref.E4M3, ref.E6M5, "sr_lazy", r)
    eager = ref.MacConfig(ref.E4M3, ref.E6M5, "sr_eager", r)
    acc = ref.E6M5
    a = int(ref.encode(1.875, ref.E4M3))
    rows = []
    for b_val in [m / 8 * 2.0**-s for s in range(2, 8) for m in (9, 11, 13, 15)]:
        b = int(ref.encode(b_val, ref.E4M3))
        prod = float(ref.decode(a, ref.E4M3) * ref.decode(b, ref.E4M3))
        for z in range(int(ref.encode(1.0, acc)), int(ref.encode(4.0, acc))):
            x = float(ref.decode(z, acc)) + prod
            e_x = int(np.floor(np.log2(x)))
            e_big = int(np.floor(np.log2(float(ref.decode(z, acc)))))
            ulp = 2.0 ** (e_x - acc.man_bits)
            f = x / ulp - np.floor(x / ulp)
            if f == 0:
                continue
            rows.append((f, e_x - e_big, eager_up_probability(lazy, z, a, b),
                         eager_up_probability(eager, z, a, b)))
    rows = np.array(rows)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    fs = np.linspace(0, 1, 401)[:-1]
    ax.step(fs, np.floor(fs * 2**r) / 2**r, where="post", color="C0", lw=1,
            label=f"SR with r = {r}")
    ax.step(fs, np.floor(fs * 2 ** (r + 1)) / 2 ** (r + 1), where="post", color="C1", lw=1,
            label=f"SR with r + 1 = {r + 1}")
    j0, j1 = rows[:, 1] == 0, rows[:, 1] == 1
    ax.plot(rows[:, 0], rows[:, 2], "o", mfc="none", color="C0", ms=7, label="sr_lazy (all cases)")
    ax.plot(rows[j0, 0], rows[j0, 3], "x", color="C2", label="sr_eager, result in anchor binade")
    ax.plot(rows[j1, 0], rows[j1, 3], "+", color="C3", ms=9,
            label="sr_eager, sum one binade above the anchor")
    ax.set_xlabel("fraction f of the exact sum (ulp)")
    ax.set_ylabel("P(round up) over all random words")
    ax.set_title(f"E4M3 x E4M3 -> E6M5, far path, r = {r} (ref.mac, every word)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    plot_sr_probability(OUT / "design_sr_probability.png")
    plot_eager_vs_lazy(OUT / "design_eager_vs_lazy.png")
    print("wrote", OUT / "design_sr_probability.png", OUT / "design_eager_vs_lazy.png")


if __name__ == "__main__":
    main()
