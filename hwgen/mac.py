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
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ref.config import MacConfig

from .datapath import AccumulateStep
from .dual import DualAccumulateStep
from .params import MacParams, resolve_datapath
from .prng import Xorshift32Gen
from .product import ProductStage, product_layout

__all__ = ["MacUnit", "RAND_MODES", "MAX_PIPELINE", "op_layout", "accumulate_step"]

RAND_MODES = ("port", "prng")
MAX_PIPELINE = 8


def op_layout(cfg: MacConfig, datapath: str) -> data.StructLayout:
    """One operation between the product stage and the loop: what each pipeline stage holds."""
    fields = {
        "valid": 1,
        "first": 1,
        "c": cfg.acc_fmt.width,
        "product": product_layout(cfg, datapath),
    }
    if cfg.rand_bits:
        fields["rand"] = cfg.rand_bits
    return data.StructLayout(fields)


def accumulate_step(cfg: MacConfig, datapath: str):
    """The loop body for ``datapath``: ``z``, ``product``, ``rand`` in, ``out`` (a code)."""
    return DualAccumulateStep(cfg) if datapath == "dual" else AccumulateStep(cfg)


class MacUnit(wiring.Component):
    """Streaming MAC for ``cfg`` (a :class:`ref.MacConfig`).

    Members (clock and synchronous active-high reset from the ``sync`` domain):
    ``in_valid`` In(1), an operation is issued; ``in_first`` In(1), it starts a
    chain (its accumulator input is ``c``); ``a``, ``b`` In(in_fmt.width);
    ``c`` In(acc_fmt.width); ``rand`` In(cfg.rand_bits), only with
    ``rand="port"`` and an SR rounding; ``out_valid`` Out(1), ``acc`` holds the
    result of the operation issued ``latency`` cycles earlier; ``acc``
    Out(acc_fmt.width).
    """

    def __new__(cls, cfg, *, rand="port", seed=0, pipeline=0, datapath=None):
        # Check before the object exists: a rejected unit is never created, so
        # Amaranth has no unused elaboratable to warn about.
        cls._validate(cfg, rand, seed, pipeline, datapath)
        return super().__new__(cls, src_loc_at=1)

    def __init__(
        self,
        cfg: MacConfig,
        *,
        rand: str = "port",
        seed: int = 0,
        pipeline: int = 0,
        datapath: str | None = None,
    ):
        self.datapath = self._validate(cfg, rand, seed, pipeline, datapath)
        self.cfg, self.rand_mode, self.seed, self.pipeline = cfg, rand, seed, pipeline
        sig = {
            "in_valid": In(1),
            "in_first": In(1),
            "a": In(cfg.in_fmt.width),
            "b": In(cfg.in_fmt.width),
            "c": In(cfg.acc_fmt.width),
            "out_valid": Out(1),
            "acc": Out(cfg.acc_fmt.width),
        }
        if rand == "port" and cfg.rand_bits:
            sig["rand"] = In(cfg.rand_bits)
        super().__init__(sig)

    @staticmethod
    def _validate(cfg, rand, seed, pipeline, datapath=None) -> str:
        """Check the parameters (ValueError, one line); return the datapath to build."""
        if not isinstance(cfg, MacConfig):
            raise ValueError(f"cfg must be a ref.MacConfig, got {type(cfg).__name__}")
        if rand not in RAND_MODES:
            raise ValueError(f"rand must be one of {RAND_MODES}, got {rand!r}")
        if not isinstance(pipeline, int) or not 0 <= pipeline <= MAX_PIPELINE:
            raise ValueError(f"pipeline must be an integer in 0..{MAX_PIPELINE}, got {pipeline!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        MacParams(cfg).check()
        return resolve_datapath(cfg, datapath)

    @property
    def latency(self) -> int:
        """Cycles from an operation's in_valid to its out_valid."""
        return self.pipeline + 1

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        nb = cfg.rand_bits
        layout = op_layout(cfg, self.datapath)
        m.submodules.product = pu = ProductStage(cfg, self.datapath)
        m.d.comb += [pu.a.eq(self.a), pu.b.eq(self.b)]

        # Stage 0 (combinational): the operation as it enters the pipeline.
        stage = Signal(layout, name="op")
        m.d.comb += [
            stage.valid.eq(self.in_valid),
            stage.first.eq(self.in_first),
            stage.c.eq(self.c),
            stage.product.eq(pu.product),
        ]
        if nb:
            if self.rand_mode == "port":
                m.d.comb += stage.rand.eq(self.rand)
            else:
                m.submodules.prng = gen = Xorshift32Gen(self.seed, 0, 0)
                m.d.comb += [gen.advance.eq(self.in_valid), stage.rand.eq(gen.word[:nb])]
        for i in range(self.pipeline):
            reg = Signal(layout, name=f"pipe{i}")
            m.d.sync += reg.eq(stage)
            stage = reg

        # The accumulation loop: one operation per cycle.
        m.submodules.step = st = accumulate_step(cfg, self.datapath)
        acc = Signal(cfg.acc_fmt.width, name="acc_reg")
        m.d.comb += [st.z.eq(Mux(stage.first, stage.c, acc)), st.product.eq(stage.product)]
        if nb:
            m.d.comb += st.rand.eq(stage.rand)
        valid = Signal(name="valid_reg")
        m.d.sync += valid.eq(stage.valid)
        with m.If(stage.valid):
            m.d.sync += acc.eq(st.out)
        m.d.comb += [self.out_valid.eq(valid), self.acc.eq(acc)]
        return m
