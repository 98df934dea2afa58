"""Emulated-GEMM throughput: ``ref.matmul`` (fast path) against ``torch.mm`` float32.

For each shape M x K x N and MAC configuration it reports emulated MACs per
second (best of ``--repeat`` runs, wall clock, all cores or ``--threads``),
the ratio to ``torch.mm`` on float32 tensors of the same shape measured in the
same run (interleaved, so machine load hits both), and the peak memory of one
call (``tracemalloc`` on the CPU: NumPy reports its buffers to it;
``torch.cuda.max_memory_allocated`` on a GPU) relative to the int64 codes of
A, B and C. The same numbers per CPU-second of the process
(``time.process_time``) are less sensitive to other jobs on a shared machine.
Results go to ``<out>/emulation.csv`` and ``<out>/emulation.md``.

    .venv/bin/python benchmarks/emulation.py                  # CPU, default shapes
    .venv/bin/python benchmarks/emulation.py --device cuda    # on a GPU
    .venv/bin/python benchmarks/emulation.py --quick          # one repeat, two shapes
    .venv/bin/python benchmarks/emulation.py --threads 1      # per-core comparison
    .venv/bin/python benchmarks/emulation.py --shapes 256x256x256 --threads 2
    .venv/bin/python benchmarks/emulation.py --device cuda --suite gpu   # squares + conv GEMMs

``--suite gpu`` times 256^3, 1024^3 and 4096^3 and the convolution GEMMs of
ResNet-20 (CIFAR, batch 128) and ResNet-18 (ImageNet, batch 32): for each
layer shape the forward GEMM (im2col: M = batch x output pixels, K = C x kh x
kw, N = output channels), the input-gradient GEMM (M = batch x input pixels,
K = output channels x kh x kw, N = input channels) and the weight-gradient GEMM
(M = output channels, K = batch x output pixels, N = C x kh x kw: the long
chains), as ``sim/gemm.py`` runs them; ``projection.md`` then gives the epoch
time those rates imply for ResNet-20 / CIFAR-10 and ResNet-18 / ImageNet.
``--scale S`` divides every suite dimension by ``S`` (a quick rehearsal of the
suite on a CPU: ``benchmarks/gpu_check.sh --rehearse``); the projection then
uses the small shapes' rates and says so.

The tables are rewritten after every row, so a run cut short by a time limit
still leaves what it measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ref  # noqa: E402
from ref import fast  # noqa: E402
from ref.chain import matmul_reference  # noqa: E402
from ref.outputs import write_csv, write_text  # noqa: E402

SHAPES = [(64, 256, 64), (128, 512, 128), (256, 256, 256), (4096, 288, 32)]
QUICK_SHAPES = [(64, 256, 64), (256, 256, 256)]
CONFIGS = ["e5m2:e6m5:rn", "e5m2:e6m5:sr_eager:4", "e4m3:fp16:rn", "e4m3:fp16:sr_eager:4"]
GPU_CONFIGS = ["e5m2:e6m5:sr_eager:4", "e5m2:e6m5:rn"]

# Convolutions: (layer, input channels, output channels, output H = W, kernel, stride,
# convolutions of this shape per network), for the epoch projection.
RESNET20 = [("conv1", 3, 16, 32, 3, 1, 1), ("stage1", 16, 16, 32, 3, 1, 6),
            ("stage2", 32, 32, 16, 3, 1, 6), ("stage3", 64, 64, 8, 3, 1, 6)]
RESNET18 = [("conv1", 3, 64, 112, 7, 2, 1), ("layer1", 64, 64, 56, 3, 1, 4),
            ("layer2", 128, 128, 28, 3, 1, 4), ("layer3", 256, 256, 14, 3, 1, 4),
            ("layer4", 512, 512, 7, 3, 1, 4)]
NETS = {"resnet20": (RESNET20, 128, 50_000), "resnet18": (RESNET18, 32, 1_281_167)}


def conv_gemms(net: str):
    """``[(label, (M, K, N), count)]``: the three GEMMs of every layer shape of ``net``."""
    layers, batch, _ = NETS[net]
    out = []
    for name, cin, cout, hw, k, stride, count in layers:
        pix = batch * hw * hw
        out.append((f"{net} {name} fwd", (pix, cin * k * k, cout), count))
        if name != "conv1":  # no gradient to the images
            out.append((f"{net} {name} bwd-input", (pix * stride * stride, cout * k * k, cin), count))
        out.append((f"{net} {name} bwd-weight", (cout, pix, cin * k * k), count))
    return out


def gpu_suite(scale: int = 1):
    """``[(label, shape)]`` of ``--suite gpu``, every dimension divided by ``scale``."""
    squares = [(f"{n}^3", (n, n, n)) for n in (256, 1024, 4096)]
    suite = squares + [(label, shape) for net in NETS for label, shape, _ in conv_gemms(net)]
    return [(label, tuple(max(1, v // scale) for v in shape)) for label, shape in suite]


FIELDS = ["device", "label", "config", "M", "K", "N", "backend", "seconds", "mac_per_s",
          "torch_mm_mac_per_s", "ratio_to_torch_mm", "mac_per_cpu_s", "torch_mm_mac_per_cpu_s",
          "ratio_cpu", "peak_bytes", "peak_over_io", "threads"]


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _inputs(cfg, M, K, N, device, seed=0):
    """Codes of N(0, 1) values rounded to the input format (finite, realistic exponents),
    generated and encoded on ``device``; and the float32 values for ``torch.mm``."""
    g = torch.Generator(device=device).manual_seed(seed)
    X = torch.randn(M, K, generator=g, dtype=torch.float32, device=device)
    Y = torch.randn(K, N, generator=g, dtype=torch.float32, device=device)
    A = ref.encode(X, cfg.in_fmt)
    B = ref.encode(Y, cfg.in_fmt)
    if device == "cpu":
        return A.numpy(), B.numpy(), X, Y
    return A, B, X, Y


def _time(fn, device, repeat, budget=5.0):
    """(best wall seconds, best process CPU seconds) over ``repeat`` calls (fewer once
    ``budget`` seconds are spent: the largest GPU shapes)."""
    best, best_cpu = float("inf"), float("inf")
    spent = 0.0
    for _ in range(repeat):
        if spent > budget:
            break
        _sync(device)
        c = time.process_time()
        t = time.perf_counter()
        fn()
        _sync(device)
        dt = time.perf_counter() - t
        spent += dt
        best = min(best, dt)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best, best_cpu


def _peak(fn, device):
    """Peak bytes allocated during one call of fn."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _mm_time(X, Y, device, repeat):
    """(wall, cpu) seconds of one torch.mm: best of ``repeat`` batches of ~0.2 G MAC each
    (at most 2,000 calls: tiny shapes)."""
    torch.mm(X, Y)
    inner = min(2000, max(1, int(2e8 // (X.shape[0] * X.shape[1] * Y.shape[1] + 1))))
    t, c = _time(lambda: [torch.mm(X, Y) for _ in range(inner)], device, repeat)
    return t / inner, c / inner


def _row(device, spec, shape, backend, call, mm, repeat, threads):
    """Time ``call`` (interleaved with torch.mm, whose (wall, cpu) seconds are ``mm()``)."""
    M, K, N = shape
    macs = M * K * N
    t_emu, c_emu = _time(call, device, repeat)
    t_mm, c_mm = mm()
    t2, c2 = _time(call, device, 1)  # once more, after torch.mm, under the same load
    t_emu, c_emu = min(t_emu, t2), min(c_emu, c2)
    peak = _peak(call, device)
    io = (M * K + K * N + M * N) * 8  # int64 codes of A, B and C
    return dict(device=device, config=spec, M=M, K=K, N=N, backend=backend, seconds=t_emu,
                mac_per_s=macs / t_emu, torch_mm_mac_per_s=macs / t_mm,
                ratio_to_torch_mm=t_mm / t_emu, mac_per_cpu_s=macs / c_emu,
                torch_mm_mac_per_cpu_s=macs / c_mm, ratio_cpu=c_mm / c_emu, peak_bytes=peak,
                peak_over_io=peak / io, threads=threads)


def run(device, shapes, configs, repeat, reference_shape=None, on_row=None):
    """Benchmark rows (dicts with FIELDS) for every config and shape; prints each row and
    calls ``on_row(rows so far)`` after it.

    ``shapes``: ``(M, K, N)`` tuples or ``(label, (M, K, N))`` pairs.
    """
    rows = []
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    threads = fast.threads() if device == "cpu" else 1
    for spec in configs:
        cfg = ref.parse_mac(spec)
        A0, B0, _, _ = _inputs(cfg, 2, 3, 2, device)
        ref.matmul(A0, B0, cfg)  # JIT compile (or load the cache) before timing
        for item in shapes:
            label, shape = item if isinstance(item[1], tuple) else ("", item)
            A, B, X, Y = _inputs(cfg, *shape, device)
            mm = lambda X=X, Y=Y: _mm_time(X, Y, device, repeat)  # noqa: E731
            backends = [("fast", ref.matmul)]
            if reference_shape == shape:
                backends.append(("reference", matmul_reference))
            for name, fn in backends:
                call = lambda fn=fn, A=A, B=B, cfg=cfg: fn(A, B, cfg, seed=1)  # noqa: E731
                rows.append(_row(device, spec, shape, name, call, mm,
                                 repeat if name == "fast" else 1, threads))
                rows[-1]["label"] = label
                print(_fmt_row(rows[-1]), flush=True)
                if on_row is not None:
                    on_row(rows)
            del A, B, X, Y
    return rows


def _fmt_row(r):
    return (f"| {r['config']} | {r.get('label') or ''} | {r['M']}x{r['K']}x{r['N']} | "
            f"{r['backend']} | "
            f"{r['mac_per_s'] / 1e6:,.1f} | {r['torch_mm_mac_per_s'] / 1e9:,.1f} | "
            f"1/{1 / r['ratio_to_torch_mm']:,.0f} | {r['mac_per_cpu_s'] / 1e6:,.1f} | "
            f"{r['torch_mm_mac_per_cpu_s'] / 1e9:,.1f} | 1/{1 / r['ratio_cpu']:,.0f} | "
            f"{r['peak_bytes'] / 2**20:,.2f} | {r['peak_over_io']:.1f} |")


def markdown(rows, device, load=None):
    """The rows as a markdown table; ``load``: the 1-minute load averages at the start and the
    end of the run (other jobs on a shared machine), shown in the header line."""
    head = [
        f"Device: {device} ({_device_name(device)}), "
        f"{rows[0]['threads'] if rows else '?'} thread(s), "
        f"torch {torch.__version__}, numpy {np.__version__}, "
        f"numba {_numba_version()}, python {platform.python_version()}."
        + (f" Load average (1 min) {load[0]:.2f} at the start, {load[1]:.2f} at the end."
           if load else ""),
        "",
        "| config | GEMM | M x K x N | backend | emulated M MAC/s | torch.mm f32 G MAC/s | ratio | "
        "emulated M MAC/cpu-s | torch.mm G MAC/cpu-s | ratio (CPU time) | peak MiB | "
        "peak / (A+B+C) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    return "\n".join(head + [_fmt_row(r) for r in rows]) + "\n"


def projection(rows, device, scale: int = 1):
    """Markdown: the epoch time of each network that the measured conv-GEMM rates imply
    (``scale`` > 1: the rates were measured on the suite's shapes divided by ``scale``)."""
    measured = ("the rate measured for its shape" if scale == 1 else
                f"the rate measured for its shape divided by {scale} (a rehearsal: not a "
                "projection to quote)")
    lines = [f"Epoch time implied by the measured GEMM rates ({device}: {_device_name(device)}). "
             "Convolutions only (the fc layers and 1x1 shortcuts add < 2 %); every GEMM of a "
             f"step (forward, input gradient, weight gradient) at {measured}.",
             "", "| network | data (images, batch) | config | emulated MACs per epoch | "
             "seconds per epoch | hours per epoch | mean G MAC/s |", "|---|---|---|---:|---:|---:|---:|"]
    fast = {(r["config"], r["label"]): r for r in rows if r["backend"] == "fast"}
    for net, (_, batch, images) in NETS.items():
        for cfg in dict.fromkeys(r["config"] for r in rows):
            macs = secs = 0.0
            ok = True
            for label, (M, K, N), count in conv_gemms(net):
                r = fast.get((cfg, label))
                if r is None:
                    ok = False
                    break
                macs += count * M * K * N
                secs += count * M * K * N / r["mac_per_s"]
            if not ok:
                continue
            steps = images / batch
            lines.append(f"| {net} | {images:,}, {batch} | {cfg} | {macs * steps:.3g} | "
                         f"{secs * steps:,.0f} | {secs * steps / 3600:,.2f} | "
                         f"{macs / secs / 1e9:,.1f} |")
    return "\n".join(lines) + "\n"


def _device_name(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} CPUs"


def _load():
    """The 1-minute load average (nan where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def _numba_version():
    try:
        import numba

        return numba.__version__
    except ImportError:
        return "absent"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--repeat", type=int, default=3, help="timed runs per case (best is kept)")
    p.add_argument("--quick", action="store_true", help="two shapes, one repeat")
    p.add_argument("--out", default="build/bench", help="folder for emulation.csv / emulation.md")
    p.add_argument("--configs", nargs="*", default=CONFIGS)
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for both the emulation and torch.mm (default: all cores)")
    p.add_argument("--shapes", default=None,
                   help="comma-separated MxKxN shapes, e.g. 256x256x256 (default: the built-in list)")
    p.add_argument("--no-reference", action="store_true",
                   help="skip timing the reference loop on 64x256x64 (256^3 with --suite gpu)")
    p.add_argument("--suite", choices=("default", "gpu"), default="default",
                   help="gpu: 256^3, 1024^3, 4096^3 and the ResNet-20 / ResNet-18 conv GEMMs "
                        "(forward, input and weight gradients), configs "
                        + ", ".join(GPU_CONFIGS) + "; writes projection.md too")
    p.add_argument("--scale", type=int, default=1,
                   help="divide every --suite gpu dimension by this (a quick rehearsal of the "
                        "suite, e.g. on a CPU; default 1)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("benchmark: --device cuda needs a CUDA GPU (torch.cuda.is_available() is False)",
              file=sys.stderr)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
        fast.THREADS = args.threads
    shapes = QUICK_SHAPES if args.quick else SHAPES
    if args.shapes:
        try:
            shapes = [tuple(int(v) for v in item.lower().split("x")) for item in args.shapes.split(",")]
        except ValueError:
            shapes = []
        if not shapes or any(len(sh) != 3 or min(sh) < 1 for sh in shapes):
            print(f"benchmark: bad --shapes {args.shapes!r}: expected MxKxN[,MxKxN...], "
                  "e.g. 256x256x256", file=sys.stderr)
            return 2
    if args.scale < 1 or (args.scale != 1 and args.suite != "gpu"):
        print(f"benchmark: --scale must be >= 1 and goes with --suite gpu, got {args.scale}",
              file=sys.stderr)
        return 2
    repeat = 1 if args.quick else args.repeat
    load0 = _load()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    def save(rows, final=False):
        """Rewrite the tables (atomically) with the rows measured so far."""
        write_csv(out / "emulation.csv", rows, FIELDS)
        write_text(out / "emulation.md", markdown(rows, args.device, (load0, _load())))
        if args.suite == "gpu":
            write_text(out / "projection.md", projection(rows, args.device, args.scale))
        if final:
            if args.suite == "gpu":
                print((out / "projection.md").read_text())
            print(f"wrote {out / 'emulation.csv'} and {out / 'emulation.md'}")

    if args.suite == "gpu":
        configs = args.configs if args.configs != CONFIGS else GPU_CONFIGS
        ref_shape = gpu_suite(args.scale)[0][1]  # 256^3 (divided by --scale)
        rows = run(args.device, gpu_suite(args.scale), configs, repeat,
                   None if args.no_reference else ref_shape, on_row=save)
    else:
        rows = run(args.device, shapes, args.configs, repeat,
                   None if args.no_reference else (64, 256, 64), on_row=save)
    save(rows, final=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
