"""Speed of the reference emulated matmul (``ref.matmul``) against ``torch.mm``.

Measures emulated MACs per second of ``ref.matmul`` on the NumPy and the
PyTorch (CPU) backends, for RN and sr_eager (r = 4), E5M2 x E5M2 -> E6M5, and
``torch.mm`` in float32 on the same shapes in the same run; the ratio is
emulated MAC/s over torch.mm MAC/s. Writes ``matmul_speed.csv`` and
``matmul_speed.md`` to ``--out`` (default ``build/bench``) and prints the table.

    .venv/bin/python benchmarks/matmul_speed.py                 # 128x512x128, 256x256x256
    .venv/bin/python benchmarks/matmul_speed.py --quick         # seconds
    .venv/bin/python benchmarks/matmul_speed.py --shapes 64x1024x64,512x64x512

A shape MxKxN multiplies an (M, K) by a (K, N) matrix: M*N chains of K MACs.
The reference path loops over K in Python, so its speed grows with M*N.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from ref import MacConfig, decode, encode, matmul, matmul_reference  # noqa: E402
from ref.outputs import write_csv, write_text  # noqa: E402


def _impls():
    """(label, function) of the matmul paths to time: the reference loop and ``ref.matmul``'s
    default dispatch (the compiled path where there is one)."""
    return [("reference", matmul_reference), ("ref.matmul", matmul)]

FULL_SHAPES = "128x512x128,256x256x256"
QUICK_SHAPES = "32x64x32"
CONFIGS = [MacConfig("e5m2", "e6m5", "rn"), MacConfig("e5m2", "e6m5", "sr_eager", 4)]


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = []
    for item in text.split(","):
        try:
            m, k, n = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise SystemExit(f"bad shape {item!r}: expected MxKxN, e.g. 128x512x128") from None
        if min(m, k, n) < 1:
            raise SystemExit(f"bad shape {item!r}: sizes must be >= 1")
        shapes.append((m, k, n))
    return shapes


def best_time(fn, repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of ``repeat`` calls.

    CPU time (all threads of this process) is less sensitive than wall time to
    other processes on a shared machine; for a single-threaded path it is the
    better estimate of the work, for a multi-threaded one it exceeds wall time.
    """
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


def bench_shape(m, k, n, repeat, impls, seed=0):
    rng = np.random.default_rng(seed)
    A = encode(rng.uniform(-1, 1, (m, k)), "e5m2")
    B = encode(rng.uniform(-1, 1, (k, n)), "e5m2")
    At, Bt = torch.from_numpy(A), torch.from_numpy(B)
    Af = torch.from_numpy(decode(A, "e5m2")).float()
    Bf = torch.from_numpy(decode(B, "e5m2")).float()
    macs = m * k * n
    # Warm up each emulated path on a small slice (first-call costs); torch.mm
    # runs last, because its idle OpenMP threads spin for a while after a call
    # and would steal the cores from the single-threaded emulation.
    for _, mm in impls:
        for cfg in CONFIGS:
            mm(A[:4, :8], B[:8, :4], cfg)
            mm(At[:4, :8], Bt[:8, :4], cfg)
    rows = []
    for cfg in CONFIGS:
        ref_out = None
        for label, mm in impls:
            for backend, a, b in (("numpy", A, B), ("torch-cpu", At, Bt)):
                out = {}
                def call(a=a, b=b, out=out, mm=mm, cfg=cfg):
                    out.update(c=mm(a, b, cfg, seed=1))

                t, cpu = best_time(call, repeat)
                codes = np.asarray(out["c"])
                if ref_out is None:
                    ref_out = codes
                elif not np.array_equal(codes, ref_out):  # every path must agree bit for bit
                    raise SystemExit(f"{label}/{backend} differs for {cfg.spec()} at {m}x{k}x{n}")
                rows.append({
                    "shape": f"{m}x{k}x{n}", "impl": label, "backend": backend, "mac": cfg.spec(),
                    "seconds": t, "cpu_seconds": cpu, "emulated_mac_per_s": macs / t,
                    "emulated_mac_per_cpu_s": macs / max(cpu, 1e-9),
                })
    torch.mm(Af, Bf)
    t_mm, _ = best_time(lambda: torch.mm(Af, Bf), max(20, repeat))
    for r in rows:
        r["torch_mm_mac_per_s"] = macs / t_mm
        r["ratio"] = t_mm / r["seconds"]
    return rows


def markdown(rows, header: str) -> str:
    lines = [header, "",
             "| shape MxKxN | path | backend | MAC | wall s | CPU s | emulated MAC/s "
             "| MAC per CPU s | torch.mm fp32 MAC/s | ratio |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['impl']} | {r['backend']} | {r['mac']} | {r['seconds']:.3f} | "
            f"{r['cpu_seconds']:.3f} | "
            f"{r['emulated_mac_per_s'] / 1e6:.2f} M | {r['emulated_mac_per_cpu_s'] / 1e6:.2f} M | "
            f"{r['torch_mm_mac_per_s'] / 1e9:.2f} G | "
            f"{r['ratio']:.2e} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", help=f"comma-separated MxKxN (default: {FULL_SHAPES})")
    p.add_argument("--quick", action="store_true",
                   help=f"one small shape ({QUICK_SHAPES}), for tests")
    p.add_argument("--repeat", type=int, default=1,
                   help="timed runs per case, best kept (default: 1)")
    p.add_argument("--impl", default="reference", choices=("reference", "ref.matmul", "all"),
                   help="which path: the reference loop (default), ref.matmul's default "
                        "dispatch, or all")
    p.add_argument("--threads", type=int,
                   help="threads for torch (and numba, if used); default: their own defaults")
    p.add_argument("--out", default="build/bench", help="output folder (default: build/bench)")
    args = p.parse_args(argv)
    shapes = parse_shapes(args.shapes or (QUICK_SHAPES if args.quick else FULL_SHAPES))
    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            import numba

            numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
        except ImportError:
            pass
    impls = _impls()
    if args.impl != "all":
        impls = [i for i in impls if i[0] == args.impl]
        if not impls:
            raise SystemExit(f"--impl {args.impl}: this checkout has no such path")

    rows = []
    for m, k, n in shapes:
        rows += bench_shape(m, k, n, max(1, args.repeat), impls)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (f"emulated matmul speed (E5M2 x E5M2 -> E6M5) vs torch.mm float32; "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
              f"numpy {np.__version__}, load average {load:.1f}; best of {max(1, args.repeat)}")
    md = markdown(rows, header)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "matmul_speed.csv", rows)
    write_text(out / "matmul_speed.md", md + "\n")
    print(md)
    print(f"\nwrote {out / 'matmul_speed.csv'} and {out / 'matmul_speed.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
