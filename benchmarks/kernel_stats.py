"""Instructions per emulated MAC in the device kernels, without a GPU.

Compiles ``ref.fast.triton_kernels`` for an NVIDIA target with Triton's own
toolchain (``triton.compile`` down to a cubin; no GPU needed), disassembles the
cubin with the ``cuobjdump`` Triton ships, finds the loop over ``k`` (the
backward branch) and divides its SASS instruction count by the outputs one
thread owns (``BM * BN / (32 * num_warps)``): machine instructions per MAC,
the device's analogue of the CPU kernel's vector instructions per 16 MACs.
With the issue rate (4 warp instructions per SM and cycle on Hopper) this
bounds MAC/s: ``SMs * 128 * clock / instructions per MAC``.

    .venv/bin/python benchmarks/kernel_stats.py                     # sm_90, 32 x 32 tiles
    .venv/bin/python benchmarks/kernel_stats.py --arch 90 --tile 16x16:2 e5m2:e6m5:rn

Writes a markdown table to stdout (and ``--out``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# integer kernels: floating-point fusion changes nothing (and Triton 3.9 warns when it is unset)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import triton  # noqa: E402

import ref  # noqa: E402
from ref.fast.triton_compile import compile_kernel, kernels_for  # noqa: E402

CONFIGS = ["e5m2:e6m5:sr_eager:4", "e5m2:e6m5:rn", "e4m3:fp16:sr_eager:4", "bf16:fp32:sr_eager:8"]


def cuobjdump(cubin: bytes, flag: str) -> str:
    """The output of Triton's ``cuobjdump <flag>`` on ``cubin``."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        return subprocess.run([str(tool), flag, str(path)], capture_output=True, text=True,
                              check=True).stdout


def registers(cubin: bytes) -> tuple[int, int]:
    """(registers per thread, bytes of stack per thread: spills) of the kernel."""
    m = re.search(r"REG:(\d+).*?STACK:(\d+)", cuobjdump(cubin, "-res-usage"))
    return int(m.group(1)), int(m.group(2))


def resident_warps(regs: int, warps: int) -> int:
    """Warps one SM holds when each program has ``warps`` warps of ``regs`` registers per
    thread (64 K registers allocated per warp in units of 256, at most 64 warps): the
    register-file limit of Hopper, which is the binding one for these kernels."""
    per_warp = -(-regs * 32 // 256) * 256
    return min(64, (65536 // per_warp) // warps * warps)


def loop_instructions(cubin: bytes) -> tuple[int, Counter]:
    """SASS instructions in the largest backward-branch loop, and their opcodes."""
    sass = cuobjdump(cubin, "-sass")
    ins = []
    for line in sass.splitlines():
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if m:
            ins.append((int(m.group(1), 16), m.group(2)))
    best = (0, Counter())
    for addr, text in ins:
        b = re.search(r"BRA\s+(?:`\(\.L_x_\d+\)\s*)?0x([0-9a-f]+)", text)
        if b and int(b.group(1), 16) < addr:
            body = [t for a, t in ins if int(b.group(1), 16) <= a <= addr]
            if len(body) > best[0]:
                ops = Counter(re.sub(r"^@!?U?P\w+\s+", "", t).split()[0].split(".")[0] for t in body)
                best = (len(body), ops)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="*", default=CONFIGS)
    p.add_argument("--arch", type=int, default=90, help="compute capability x 10 [default: 90]")
    p.add_argument("--tile", default="32x32:4", help="BMxBN:num_warps [default: 32x32:4]")
    p.add_argument("--out", default=None, help="also write the table here")
    args = p.parse_args(argv)
    shape, _, warps = args.tile.partition(":")
    bm, bn = (int(v) for v in shape.split("x"))
    warps = int(warps or 4)
    per_thread = bm * bn / (32 * warps)
    lines = [f"Device kernels compiled for sm_{args.arch} (Triton {triton.__version__}), tiles "
             f"{bm} x {bn}, {warps} warps ({per_thread:g} outputs per thread).", "",
             "| config | kernel | SASS instructions in the k loop | per MAC | registers per thread "
             "(spill bytes) | resident warps per SM | top opcodes |",
             "|---|---|---:|---:|---:|---:|---|"]
    for spec in args.configs:
        cfg = ref.parse_mac(spec)
        for kernel in kernels_for(cfg):
            k = compile_kernel(cfg, kernel, arch=args.arch, bm=bm, bn=bn, warps=warps)
            n, ops = loop_instructions(k.asm["cubin"])
            regs, spill = registers(k.asm["cubin"])
            top = ", ".join(f"{op} {c}" for op, c in ops.most_common(6))
            lines.append(f"| {spec} | {kernel} | {n} | {n / per_thread:.0f} | {regs} ({spill}) | "
                         f"{resident_warps(regs, warps)} | {top} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
