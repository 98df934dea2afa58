"""``MacUnit``: the streaming fused MAC with an accumulator register.

One operation per clock: ``acc <= round(z + a*b)`` where ``z`` is the ``c``
port when ``in_first`` is high (a new chain starts) and the running
accumulator otherwise, so the operations of one chain may be issued on
consecutive cycles. ``pipeline`` register stages sit between the product
unit and the accumulation loop; the loop itself (accumulator -> adder ->
rounder -> accumulator) is one cycle. Latency in_valid -> out_valid:
``pipeline + 1`` cycles.

Random bits come from the ``rand`` port (``rand="port"``) or from a built-in
xorshift32 generator (``rand="prng"``) seeded like PE (0, 0) of ``ref.matmul``
and stepped once per valid operation, its word masked to ``cfg.rand_bits``.

``datapath`` picks the loop body: ``"dual"`` (:class:`hwgen.dual.DualAccumulateStep`,
close and far paths) or ``"single"`` (:class:`hwgen.datapath.AccumulateStep`).
The default (``None``) is dual wherever its limits allow
(:meth:`hwgen.params.DualParams.limit`), single otherwise; ``unit.datapath``
says which. The operation travels through the pipeline as one
:func:`op_layout` struct, the product normalised (and biased) in front of it.

``interleave=L`` (dual datapath) makes the loop ``L`` stages deep (C-slow): ``L - 1``
registers inside the loop body, at the boundaries ``cuts`` of :mod:`hwgen.stages`
(default :func:`hwgen.stages.default_cuts`), and ``L`` independent chains going round
it, one stage each. The chain of an operation is its issue cycle modulo ``L``
(counted from the end of reset; the ``chain`` output names it), so at one operation
per cycle the chains take turns and each one stays sequential. A cycle without an
operation lets its chain go round unchanged (the loop adds a zero of the
accumulator's sign). Latency: ``pipeline + L``; with the built-in generator, chain
``l`` has its own, seeded like PE ``(l, 0)`` of ``ref.matmul``.

``start`` says how a chain gets its start value: ``"first"`` (default) with the
operation (``in_first`` and ``c``: the loop's accumulator input is ``c`` instead of
the accumulator, a multiplexer at the head of the loop), or ``"load"``: a ``load``
cycle writes ``c`` into the accumulator of the chain leaving the loop (its next
operation adds to ``c``), a multiplexer at the loop's end and nothing in the
pipeline. The systolic array loads its interleaved PEs this way (hwgen.array).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ref.config import MacConfig

from .datapath import AccumulateStep
from .dual import DualAccumulateStep
from .params import DualParams, MacParams, resolve_datapath
from .prng import Xorshift32Gen, Xorshift32Ring
from .product import ProductStage, product_layout
from .stages import MAX_INTERLEAVE, check_cuts, default_cuts

__all__ = ["MacUnit", "RAND_MODES", "START_MODES", "MAX_PIPELINE", "MAX_INTERLEAVE",
           "op_layout", "accumulate_step", "phase_plus"]

RAND_MODES = ("port", "prng")
START_MODES = ("first", "load")
MAX_PIPELINE = 8


def op_layout(cfg: MacConfig, datapath: str, start: str = "first") -> data.StructLayout:
    """One operation between the product stage and the loop: what each pipeline stage holds
    (``start="load"``: no chain start travels with the operations)."""
    fields = {"valid": 1}
    if start == "first":
        fields.update(first=1, c=cfg.acc_fmt.width)
    fields["product"] = product_layout(cfg, datapath)
    if cfg.rand_bits:
        fields["rand"] = cfg.rand_bits
    return data.StructLayout(fields)


def accumulate_step(cfg: MacConfig, datapath: str):
    """The loop body for ``datapath``: ``z``, ``product``, ``rand`` in, ``out`` (a code)."""
    return DualAccumulateStep(cfg) if datapath == "dual" else AccumulateStep(cfg)


def phase_plus(phase, k: int, n: int):
    """``(phase + k) mod n`` for a ``phase`` in ``0 .. n-1`` and a constant ``k`` (Amaranth value)."""
    k %= n
    if not k:
        return phase
    total = phase + k
    return Mux(total >= n, total - n, total)[: len(phase)]


class MacUnit(wiring.Component):
    """Streaming MAC for ``cfg`` (a :class:`ref.MacConfig`).

    Members (clock and synchronous active-high reset from the ``sync`` domain):
    ``in_valid`` In(1), an operation is issued; ``in_first`` In(1), it starts a
    chain (its accumulator input is ``c``); ``a``, ``b`` In(in_fmt.width);
    ``c`` In(acc_fmt.width); ``rand`` In(cfg.rand_bits), only with
    ``rand="port"`` and an SR rounding; ``out_valid`` Out(1), ``acc`` holds the
    result of the operation issued ``latency`` cycles earlier; ``acc``
    Out(acc_fmt.width). With ``interleave`` L > 1 also: ``chain`` Out(range(L)),
    the chain of an operation issued this cycle; ``out_chain`` Out(range(L)), the
    chain whose accumulator ``acc`` shows (its result when ``out_valid``). With
    ``start="load"``: no ``in_first``; ``load`` In(1), write ``c`` into the accumulator
    of the chain leaving the loop this cycle (``load_chain`` Out(range(L)) names it,
    L > 1; it shows on ``acc`` in the next cycle), instead of that chain's result.
    """

    def __new__(cls, cfg, *, rand="port", seed=0, pipeline=0, datapath=None, interleave=1,
                cuts=None, start="first"):
        # Check before the object exists: a rejected unit is never created, so
        # Amaranth has no unused elaboratable to warn about.
        cls._validate(cfg, rand, seed, pipeline, datapath, interleave, cuts, start)
        return super().__new__(cls, src_loc_at=1)

    def __init__(
        self,
        cfg: MacConfig,
        *,
        rand: str = "port",
        seed: int = 0,
        pipeline: int = 0,
        datapath: str | None = None,
        interleave: int = 1,
        cuts=None,
        start: str = "first",
    ):
        self.datapath, self.cuts = self._validate(cfg, rand, seed, pipeline, datapath,
                                                  interleave, cuts, start)
        self.cfg, self.rand_mode, self.seed, self.pipeline = cfg, rand, seed, pipeline
        self.interleave, self.start = interleave, start
        sig = {
            "in_valid": In(1),
            ("in_first" if start == "first" else "load"): In(1),
            "a": In(cfg.in_fmt.width),
            "b": In(cfg.in_fmt.width),
            "c": In(cfg.acc_fmt.width),
            "out_valid": Out(1),
            "acc": Out(cfg.acc_fmt.width),
        }
        if rand == "port" and cfg.rand_bits:
            sig["rand"] = In(cfg.rand_bits)
        if interleave > 1:
            sig["chain"] = Out(range(interleave))
            sig["out_chain"] = Out(range(interleave))
            if start == "load":
                sig["load_chain"] = Out(range(interleave))
        super().__init__(sig)

    @staticmethod
    def _validate(cfg, rand, seed, pipeline, datapath=None, interleave=1, cuts=None,
                  start="first"):
        """Check the parameters (ValueError, one line); return (datapath, loop cuts)."""
        if not isinstance(cfg, MacConfig):
            raise ValueError(f"cfg must be a ref.MacConfig, got {type(cfg).__name__}")
        if rand not in RAND_MODES:
            raise ValueError(f"rand must be one of {RAND_MODES}, got {rand!r}")
        if not isinstance(pipeline, int) or not 0 <= pipeline <= MAX_PIPELINE:
            raise ValueError(f"pipeline must be an integer in 0..{MAX_PIPELINE}, got {pipeline!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if start not in START_MODES:
            raise ValueError(f"start must be one of {START_MODES}, got {start!r}")
        if (isinstance(interleave, bool) or not isinstance(interleave, int)
                or not 1 <= interleave <= MAX_INTERLEAVE):
            raise ValueError(f"interleave must be an integer in 1..{MAX_INTERLEAVE}, "
                             f"got {interleave!r}")
        MacParams(cfg).check()
        path = resolve_datapath(cfg, datapath)
        if interleave > 1 and path != "dual":
            why = DualParams(cfg).limit() or "the single datapath was asked for"
            raise ValueError(f"interleave {interleave} needs the dual datapath, which does not "
                             f"apply: {why}; use interleave 1 (--interleave 1)")
        if cuts is None:
            cuts = default_cuts(interleave, cfg.rounding)
        cuts = check_cuts(cuts, interleave)
        return path, cuts

    @property
    def latency(self) -> int:
        """Cycles from an operation's in_valid to its out_valid."""
        return self.pipeline + self.interleave

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        nb, L = cfg.rand_bits, self.interleave
        layout = op_layout(cfg, self.datapath, self.start)
        m.submodules.product = pu = ProductStage(cfg, self.datapath)
        m.d.comb += [pu.a.eq(self.a), pu.b.eq(self.b)]

        # Stage 0 (combinational): the operation as it enters the pipeline.
        stage = Signal(layout, name="op")
        m.d.comb += [stage.valid.eq(self.in_valid), stage.product.eq(pu.product)]
        if self.start == "first":
            m.d.comb += [
                # interleaved: an idle cycle still goes round the loop, so it must not restart it
                stage.first.eq(self.in_first if L == 1 else self.in_first & self.in_valid),
                stage.c.eq(self.c),
            ]
        if nb:
            if self.rand_mode == "port":
                m.d.comb += stage.rand.eq(self.rand)
            else:
                gen = (Xorshift32Gen(self.seed, 0, 0) if L == 1 else
                       Xorshift32Ring(self.seed, [(chain, 0) for chain in range(L)]))
                m.submodules.prng = gen
                m.d.comb += [gen.advance.eq(self.in_valid), stage.rand.eq(gen.word[:nb])]
        for i in range(self.pipeline):
            reg = Signal(layout, name=f"pipe{i}")
            m.d.sync += reg.eq(stage)
            stage = reg
        if L > 1:
            return self._interleaved_loop(m, stage)

        # The accumulation loop: one operation per cycle.
        m.submodules.step = st = accumulate_step(cfg, self.datapath)
        acc = Signal(cfg.acc_fmt.width, name="acc_reg")
        z = Mux(stage.first, stage.c, acc) if self.start == "first" else acc
        m.d.comb += [st.z.eq(z), st.product.eq(stage.product)]
        if nb:
            m.d.comb += st.rand.eq(stage.rand)
        valid = Signal(name="valid_reg")
        m.d.sync += valid.eq(stage.valid)
        if self.start == "load":
            with m.If(self.load):
                m.d.sync += acc.eq(self.c)
            with m.Elif(stage.valid):
                m.d.sync += acc.eq(st.out)
        else:
            with m.If(stage.valid):
                m.d.sync += acc.eq(st.out)
        m.d.comb += [self.out_valid.eq(valid), self.acc.eq(acc)]
        return m

    def _interleaved_loop(self, m, stage):
        """The C-slow loop: L stages, L chains; every cycle each chain moves one stage on."""
        L = self.interleave
        phase = Signal(range(L), name="phase")  # the issue cycle modulo L: the chain issued now
        m.d.sync += phase.eq(Mux(phase == L - 1, 0, phase + 1))
        m.submodules.step = st = DualAccumulateStep(self.cfg, cuts=self.cuts, idle=True)
        acc = Signal(self.cfg.acc_fmt.width, name="acc_reg")
        z = Mux(stage.first, stage.c, acc) if self.start == "first" else acc
        m.d.comb += [st.z.eq(z), st.product.eq(stage.product), st.idle.eq(~stage.valid)]
        if self.cfg.rand_bits:
            m.d.comb += st.rand.eq(stage.rand)
        if self.start == "load":
            # the chain leaving the loop now shows on acc next cycle: (phase + 1 - pipeline) mod L
            m.d.comb += self.load_chain.eq(phase_plus(phase, 1 - self.pipeline, L))
            m.d.sync += acc.eq(Mux(self.load, self.c, st.out))
        else:
            m.d.sync += acc.eq(st.out)  # no enable: an idle chain comes round unchanged
        valid = stage.valid
        for k in range(L):  # the loop's L - 1 boundaries, then acc_reg
            reg = Signal(name=f"valid_d{k}")
            m.d.sync += reg.eq(valid)
            valid = reg
        # acc_reg shows, in cycle t, the chain issued in cycle t - pipeline - L
        out_chain = phase_plus(phase, -self.pipeline, L)
        m.d.comb += [self.out_valid.eq(valid), self.acc.eq(acc), self.chain.eq(phase),
                     self.out_chain.eq(out_chain)]
        return m
