"""``SystolicArray``: an R x C output-stationary array of SR MAC processing elements.

Each processing element (PE) is a :class:`hwgen.mac.MacUnit` (random bits from
its ``rand`` port) beside its own :class:`hwgen.prng.Xorshift32Gen` seeded
with ``ref.prng.seed_state_int(seed, i, j)``; the generator steps only when
the PE performs a MAC. The array computes tiles ``Z = C0 + A @ B`` with
``A`` (R x K), ``B`` (K x C), ``C0`` (R x C); :mod:`ref.array` is its golden
model (same tiles, same generator states across tiles).

Design ("bubble" skew, no global stall): a *beat* (column k of A, row k of B)
enters the array when both the ``a`` and ``b`` streams offer one; the cycles
where one of them stalls enter as bubbles (valid = 0). Row i of A is delayed
by i registers, column j of B by j registers, and both move one PE per cycle,
so A[i, k] and B[k, j] meet at PE (i, j) exactly ``i + j`` cycles after their
beat entered, bubbles or not. The valid and first flags ride with A. So the
array never stalls internally, and stalls only change *when* a MAC happens,
never which MACs or their random words.

A tile runs in four phases (named states of one ``m.FSM()``, no overlap, the simplest
correct design):

1. LOAD: R beats of ``c_in`` (row i of C0 each) into per-PE preload registers;
2. COMPUTE: K beats of ``a``/``b``; the ``a`` beat with ``last`` set ends it;
3. DRAIN: R + C - 2 + MAC latency cycles until PE (R-1, C-1) has its result;
4. OUTPUT: R beats of ``c_out`` (row i of Z each; ``last`` on row R-1),
   each waiting for ``c_out.ready``; then back to LOAD.

Streams (``amaranth.lib.stream``; a transfer is ``valid & ready`` on a rising
edge; lane l of a ``data`` field is bits ``[l*w, (l+1)*w)`` of the payload):

* ``a``: In, payload ``{data: R x in_fmt.width, last: 1}`` (lane i = A[i, k]);
* ``b``: In, payload ``{data: C x in_fmt.width}`` (lane j = B[k, j]);
* ``c_in``: In, payload ``{data: C x acc_fmt.width}`` (lane j = C0[i, j]);
* ``c_out``: Out, payload ``{data: C x acc_fmt.width, last: 1}``.

``a.ready`` is ``COMPUTE & b.valid`` and ``b.ready`` is ``COMPUTE & a.valid``,
so A and B beats always transfer together.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ref.config import MacConfig
from ref.prng import seed_state_int

from .mac import MAX_PIPELINE, MacUnit
from .prng import Xorshift32Gen

__all__ = ["SystolicArray", "MAX_DIM", "tile_cycles"]

#: Largest rows or cols the generator accepts (a sanity bound, not a hardware limit).
MAX_DIM = 64


def a_layout(cfg: MacConfig, rows: int):
    return data.StructLayout({"data": data.ArrayLayout(cfg.in_fmt.width, rows), "last": 1})


def b_layout(cfg: MacConfig, cols: int):
    return data.StructLayout({"data": data.ArrayLayout(cfg.in_fmt.width, cols)})


def c_in_layout(cfg: MacConfig, cols: int):
    return data.StructLayout({"data": data.ArrayLayout(cfg.acc_fmt.width, cols)})


def c_out_layout(cfg: MacConfig, cols: int):
    return data.StructLayout({"data": data.ArrayLayout(cfg.acc_fmt.width, cols), "last": 1})


def tile_cycles(rows: int, cols: int, k: int, pipeline: int = 0) -> int:
    """Clock cycles of one tile with every stream always ready/valid (LOAD to last OUTPUT beat)."""
    return rows + k + drain_cycles(rows, cols, pipeline) + rows


def drain_cycles(rows: int, cols: int, pipeline: int = 0) -> int:
    """DRAIN cycles: the last beat reaches PE (R-1, C-1) after R+C-2 cycles, then the MAC latency."""
    return rows + cols - 2 + pipeline + 1


class SystolicArray(wiring.Component):
    """R x C output-stationary SR MAC array for ``cfg`` (a :class:`ref.MacConfig`).

    ``seed``: base seed of the PE generators (0..2**32-1); ``pipeline``: register
    stages inside each MAC (see :class:`hwgen.mac.MacUnit`). Clock and synchronous
    active-high reset from the ``sync`` domain; reset also reseeds every generator.
    """

    def __init__(self, cfg: MacConfig, rows: int, cols: int, *, seed: int = 0,
                 pipeline: int = 0):
        try:
            self._validate(cfg, rows, cols, seed, pipeline)
        except ValueError:
            self._MustUse__silence = True  # a rejected array is never elaborated: no warning
            raise
        self.cfg, self.rows, self.cols = cfg, rows, cols
        self.seed, self.pipeline = seed, pipeline
        super().__init__({
            "a": In(stream.Signature(a_layout(cfg, rows))),
            "b": In(stream.Signature(b_layout(cfg, cols))),
            "c_in": In(stream.Signature(c_in_layout(cfg, cols))),
            "c_out": Out(stream.Signature(c_out_layout(cfg, cols))),
        })

    @staticmethod
    def _validate(cfg, rows, cols, seed, pipeline):
        if not isinstance(cfg, MacConfig):
            raise ValueError(f"cfg must be a ref.MacConfig, got {type(cfg).__name__}")
        for name, v in (("rows", rows), ("cols", cols)):
            if not isinstance(v, int) or not 1 <= v <= MAX_DIM:
                raise ValueError(f"array {name} must be an integer in 1..{MAX_DIM}, got {v!r}")
        if not isinstance(seed, int) or not 0 <= seed < 1 << 32:
            raise ValueError(f"seed must be an integer in 0..2**32-1, got {seed!r}")
        if not isinstance(pipeline, int) or not 0 <= pipeline <= MAX_PIPELINE:
            raise ValueError(f"pipeline must be an integer in 0..{MAX_PIPELINE}, got {pipeline!r}")
        MacUnit._validate(cfg, "port", seed, pipeline)  # the MAC's own datapath limits

    @property
    def latency(self) -> int:
        """Latency of one PE's MAC (cycles)."""
        return self.pipeline + 1

    def initial_states(self) -> list[list[int]]:
        """Reset states of the PE generators, ``[i][j]``."""
        return [[seed_state_int(self.seed, i, j) for j in range(self.cols)]
                for i in range(self.rows)]

    def elaborate(self, platform):
        m = Module()
        cfg, R, C = self.cfg, self.rows, self.cols
        wi, wa = cfg.in_fmt.width, cfg.acc_fmt.width
        nb = cfg.rand_bits

        # ---- control: one FSM (LOAD, COMPUTE, DRAIN, OUTPUT), the phases as signals ----
        row = Signal(range(R + 1))  # row counter of LOAD and OUTPUT
        drain = drain_cycles(R, C, self.pipeline)
        cnt = Signal(range(drain + 1))
        inject = Signal()  # a beat enters this cycle (both streams transfer)
        first = Signal(init=1)  # the next beat is k = 0 of its tile
        in_load, in_compute, in_output = Signal(), Signal(), Signal()

        m.d.comb += [
            self.a.ready.eq(in_compute & self.b.valid),
            self.b.ready.eq(in_compute & self.a.valid),
            inject.eq(in_compute & self.a.valid & self.b.valid),
            self.c_in.ready.eq(in_load),
        ]

        # ---- preload registers: c0[i][j], written row by row in LOAD ----
        c0 = [[Signal(wa, name=f"c0_{i}_{j}") for j in range(C)] for i in range(R)]
        with m.If(in_load & self.c_in.valid):
            for i in range(R):
                with m.If(row == i):
                    m.d.sync += [c0[i][j].eq(self.c_in.payload.data[j]) for j in range(C)]

        # ---- skew: row i of A (with valid, first) delayed i cycles, column j of B j cycles ----
        def delay(sigs, n, tag):
            for s in range(n):
                regs = [Signal.like(x, name=f"{tag}_d{s}_{q}") for q, x in enumerate(sigs)]
                m.d.sync += [r_.eq(x) for r_, x in zip(regs, sigs, strict=True)]
                sigs = regs
            return sigs

        a_edge = [delay([inject, first & inject, self.a.payload.data[i]], i, f"askew{i}")
                  for i in range(R)]
        b_edge = [delay([self.b.payload.data[j]], j, f"bskew{j}")[0] for j in range(C)]

        # ---- the PE grid: A moves right, B moves down, one PE per cycle ----
        accs = [[None] * C for _ in range(R)]
        b_in_row = list(b_edge)  # b entering row i, per column
        for i in range(R):
            v_in, f_in, x_in = a_edge[i]
            b_next = []
            for j in range(C):
                pe = MacUnit(cfg, rand="port", seed=self.seed, pipeline=self.pipeline)
                m.submodules[f"pe_{i}_{j}"] = pe
                y_in = b_in_row[j]
                m.d.comb += [
                    pe.in_valid.eq(v_in),
                    pe.in_first.eq(f_in),
                    pe.a.eq(x_in),
                    pe.b.eq(y_in),
                    pe.c.eq(c0[i][j]),
                ]
                if nb:
                    gen = Xorshift32Gen(self.seed, i, j)
                    m.submodules[f"prng_{i}_{j}"] = gen
                    m.d.comb += [gen.advance.eq(v_in), pe.rand.eq(gen.word[:nb])]
                accs[i][j] = pe.acc
                # Pass-through registers to the right and downwards.
                if j + 1 < C:
                    v_r, f_r, x_r = (Signal(name=f"av_{i}_{j}"), Signal(name=f"af_{i}_{j}"),
                                     Signal(wi, name=f"ax_{i}_{j}"))
                    m.d.sync += [v_r.eq(v_in), f_r.eq(f_in), x_r.eq(x_in)]
                    v_in, f_in, x_in = v_r, f_r, x_r
                if i + 1 < R:
                    y_r = Signal(wi, name=f"by_{i}_{j}")
                    m.d.sync += y_r.eq(y_in)
                    b_next.append(y_r)
            b_in_row = b_next

        # ---- output: row `row` of the accumulators ----
        m.d.comb += [
            self.c_out.valid.eq(in_output),
            # `& valid`: with R = 1 `row` never changes, and Icarus never runs an always @*
            # block whose inputs never change, which left `last` at X (seen in the cocotb bench).
            self.c_out.payload.last.eq((row == R - 1) & in_output),
        ]
        for i in range(R):
            with m.If(row == i):
                m.d.comb += [self.c_out.payload.data[j].eq(accs[i][j]) for j in range(C)]

        # ---- phase transitions ----
        with m.FSM(init="LOAD") as fsm:
            with m.State("LOAD"):
                with m.If(self.c_in.valid):
                    with m.If(row == R - 1):
                        m.d.sync += [row.eq(0), first.eq(1)]
                        m.next = "COMPUTE"
                    with m.Else():
                        m.d.sync += row.eq(row + 1)
            with m.State("COMPUTE"):
                with m.If(inject):
                    m.d.sync += first.eq(0)
                    with m.If(self.a.payload.last):
                        m.d.sync += cnt.eq(drain - 1)
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(cnt == 0):
                    m.next = "OUTPUT"
                with m.Else():
                    m.d.sync += cnt.eq(cnt - 1)
            with m.State("OUTPUT"):
                with m.If(self.c_out.ready):
                    with m.If(row == R - 1):
                        m.d.sync += row.eq(0)
                        m.next = "LOAD"
                    with m.Else():
                        m.d.sync += row.eq(row + 1)
        # The phases as plain comparisons of the state (continuous assignments: Icarus never
        # runs an always @* block whose inputs have not changed yet, so a phase flag driven
        # from inside a state would stay X until the first transition).
        m.d.comb += [in_load.eq(fsm.ongoing("LOAD")), in_compute.eq(fsm.ongoing("COMPUTE")),
                     in_output.eq(fsm.ongoing("OUTPUT"))]
        return m
