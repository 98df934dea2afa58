"""Convert a float model to emulated layers, report what stayed float, configure / inspect.

:func:`quantize_model` walks a model (written in plain torch: torchvision-style
ResNets and MobileNets, transformers built from ``nn.Linear`` and
:class:`sim.MatMul`) and swaps

* ``nn.Linear`` -> :class:`QLinear`, ``nn.Conv1d`` -> :class:`QConv1d`,
  ``nn.Conv2d`` -> :class:`QConv2d` (any groups, padding, padding mode),
  :class:`sim.MatMul` -> :class:`QMatMul`;
* optionally, norms, activations, softmax and pooling -> the same layer with an
  output :class:`sim.Quantizer` (``outputs=``).

Everything else stays float32 and is listed, with the reason, in the report
``model.srmac_report`` (:class:`ConversionReport`): GEMMs it cannot emulate
(3-D or transposed convolutions, ``nn.MultiheadAttention``, recurrent layers,
functional ``torch.matmul`` / ``F.linear`` calls found by tracing the model
with ``torch.fx``), layers the configuration excluded, and, when output
quantizers were asked for, the non-GEMM layers that did not get one.
"""

from __future__ import annotations

import copy
import fnmatch
import operator
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ref.outputs import markdown_table

from . import outputs as out_q
from .layers import MatMul, QConv1d, QConv2d, QLayerMixin, QLinear, QMatMul, SeededModule
from .quant import LayerConfig, make_layer_config
from .quantizer import Quantizer

__all__ = ["quantize_model", "set_config", "qlayers", "total_macs", "reset_macs",
           "ConversionReport", "EMULATED"]

#: Float layer -> emulated layer.
EMULATED: dict[type, type] = {nn.Linear: QLinear, nn.Conv1d: QConv1d, nn.Conv2d: QConv2d,
                              MatMul: QMatMul}

#: Layers with GEMMs that stay float32, and why.
_NOT_EMULATED: tuple[tuple[type, str], ...] = (
    (nn.MultiheadAttention, "computes with F.multi_head_attention_forward (its projections and "
                            "both attention matmuls): build attention from nn.Linear and "
                            "sim.MatMul to emulate it"),
    (nn.Conv3d, "3-D convolutions are not emulated"),
    (nn.ConvTranspose1d, "transposed convolutions are not emulated"),
    (nn.ConvTranspose2d, "transposed convolutions are not emulated"),
    (nn.ConvTranspose3d, "transposed convolutions are not emulated"),
    (nn.Bilinear, "bilinear layers are not emulated"),
    (nn.RNNBase, "recurrent layers are not emulated"),
    (nn.RNNCellBase, "recurrent cells are not emulated"),
)

_FUNCTIONAL_GEMMS = {torch.matmul: "torch.matmul", operator.matmul: "@", torch.bmm: "torch.bmm",
                     torch.mm: "torch.mm", torch.einsum: "torch.einsum", F.linear: "F.linear",
                     F.conv1d: "F.conv1d", F.conv2d: "F.conv2d", torch.addmm: "torch.addmm",
                     torch.baddbmm: "torch.baddbmm", F.bilinear: "F.bilinear",
                     F.scaled_dot_product_attention: "F.scaled_dot_product_attention"}
_METHOD_GEMMS = {"matmul", "mm", "bmm", "__matmul__"}
_FUNCTIONAL_OTHER = {F.relu: "F.relu", torch.relu: "torch.relu", F.relu6: "F.relu6",
                     F.gelu: "F.gelu", F.silu: "F.silu", torch.sigmoid: "torch.sigmoid",
                     torch.tanh: "torch.tanh", F.softmax: "F.softmax", torch.softmax: "torch.softmax",
                     F.log_softmax: "F.log_softmax", F.max_pool2d: "F.max_pool2d",
                     F.avg_pool2d: "F.avg_pool2d", F.adaptive_avg_pool2d: "F.adaptive_avg_pool2d",
                     F.layer_norm: "F.layer_norm", F.batch_norm: "F.batch_norm"}


@dataclass
class ReportRow:
    layer: str
    type: str
    status: str  # "emulated", "quantized output", "float"
    detail: str = ""
    leftover: bool = False  # float although it could have been converted (strict refuses it)
    gemm: bool = False  # the layer (or call) computes a GEMM


@dataclass
class ConversionReport:
    """What :func:`quantize_model` did to each layer; ``str()`` is the table of float layers."""

    rows: list[ReportRow] = field(default_factory=list)

    @property
    def emulated(self) -> list[ReportRow]:
        return [r for r in self.rows if r.status == "emulated"]

    @property
    def float_rows(self) -> list[ReportRow]:
        return [r for r in self.rows if r.status == "float"]

    @property
    def leftovers(self) -> list[ReportRow]:
        return [r for r in self.rows if r.leftover]

    def table(self, rows=None) -> str:
        rows = self.float_rows if rows is None else rows
        return markdown_table([{"layer": r.layer or "(model)", "type": r.type, "reason": r.detail}
                               for r in rows], ["layer", "type", "reason"])

    def summary(self) -> str:
        n_q = sum(r.status == "quantized output" for r in self.rows)
        return (f"emulated: {len(self.emulated)}, output quantizers: {n_q}, float: "
                f"{len(self.float_rows)} (convertible: {len(self.leftovers)})")

    def __str__(self) -> str:
        text = self.summary()
        return text + ("\n" + self.table() if self.float_rows else "")


def _not_emulated_reason(mod: nn.Module) -> str | None:
    for cls, why in _NOT_EMULATED:
        if isinstance(mod, cls):
            return why
    return None


def _emulated_class(mod: nn.Module) -> tuple[type | None, str]:
    """The Q class for ``mod`` (or None) and, if None, why."""
    for base, qcls in EMULATED.items():
        if type(mod) is base:
            return qcls, ""
        if isinstance(mod, base):
            if type(mod).forward is base.forward:
                return qcls, ""
            return None, (f"subclass of {base.__name__} with its own forward: convert it "
                          f"with {qcls.__name__}.from_float where its GEMM is")
    return None, ""


def _is_pattern(key: str) -> bool:
    return any(c in key for c in "*?[")


class _Resolver:
    """The configuration of each layer from one config, a dict or a callable."""

    def __init__(self, config, names: list[str]):
        self.config, self.names = config, names
        if isinstance(config, dict):
            unknown = [k for k in config if k != "*" and not (
                k in names or (_is_pattern(k) and any(fnmatch.fnmatchcase(n, k) for n in names)))]
            if unknown:
                known = ", ".join(repr(n) for n in names[:12]) + (" ..." if len(names) > 12 else "")
                raise ValueError(f"config names no layer of the model: {', '.join(map(repr, unknown))}"
                                 f" (emulatable layers: {known or 'none'})")

    def __call__(self, name: str, module: nn.Module) -> tuple[LayerConfig | None, str]:
        c = self.config
        if callable(c) and not isinstance(c, (LayerConfig, dict)):
            got = c(name, module)
            return (None, "the config callable returned None") if got is None else \
                (make_layer_config(got), "")
        if isinstance(c, dict):
            if name in c:
                got = c[name]
            else:
                got = next((v for k, v in c.items() if k != "*" and _is_pattern(k)
                            and fnmatch.fnmatchcase(name, k)), c.get("*", ...))
            if got is ...:
                return None, "no entry in the config dict and no '*'"
            return (None, "the config dict maps it to None") if got is None else \
                (make_layer_config(got), "")
        return make_layer_config(c), ""


def _output_quantizers(outputs) -> dict[str, Quantizer]:
    """``outputs=`` as {kind: template quantizer}."""
    if outputs is None:
        return {}
    if not isinstance(outputs, dict):
        outputs = {"*": outputs}
    bad = [k for k in outputs if k != "*" and k not in out_q.KINDS]
    if bad:
        raise ValueError(f"unknown output kind(s) {', '.join(map(repr, bad))}: use "
                         f"{', '.join(out_q.KINDS)} or '*'")
    result = {}
    for kind in out_q.KINDS:
        spec = outputs.get(kind, outputs.get("*"))
        if spec is None:
            continue
        if isinstance(spec, Quantizer):
            result[kind] = spec
        elif isinstance(spec, (tuple, list)):
            result[kind] = Quantizer(*spec)
        else:
            result[kind] = Quantizer(spec)
    return result


def _functional_calls(model: nn.Module, want_other: bool) -> tuple[list[ReportRow], str | None]:
    """GEMMs (and, if asked, activations / pooling) called as functions in ``forward``."""
    if type(model).__module__.startswith("torch.nn"):
        return [], None  # a torch layer itself: its forward is torch's, not the user's
    class Tracer(torch.fx.Tracer):  # srmac's own modules are layers, not code to inline
        def is_leaf_module(self, m, qualname):
            return isinstance(m, (MatMul, SeededModule, out_q.OutputQuantized)) or \
                super().is_leaf_module(m, qualname)

    try:
        graph = Tracer().trace(model)
    except Exception as exc:  # noqa: BLE001 - any model torch.fx cannot trace
        return [], f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    rows = []
    for node in graph.nodes:
        name = None
        gemm = False
        if node.op == "call_function":
            if node.target in _FUNCTIONAL_GEMMS:
                name, gemm = _FUNCTIONAL_GEMMS[node.target], True
            elif want_other and node.target in _FUNCTIONAL_OTHER:
                name = _FUNCTIONAL_OTHER[node.target]
        elif node.op == "call_method":
            if node.target in _METHOD_GEMMS:
                name, gemm = f"Tensor.{node.target}", True
        if name is None:
            continue
        why = ("a GEMM called as a function in forward: replace it with a module (nn.Linear, "
               "sim.MatMul) to emulate it") if gemm else (
            "called as a function in forward: an nn.Module gets an output quantizer")
        rows.append(ReportRow(f"(call {node.name})", name, "float", why, leftover=True,
                              gemm=gemm))
    return rows, None


def quantize_model(model: nn.Module, config, *, seed: int = 0, inplace: bool = False,
                   outputs=None, strict: bool = False, trace: bool = True) -> nn.Module:
    """Swap the model's GEMM layers for emulated ones; attach output quantizers; report.

    Parameters
    ----------
    config
        One :class:`LayerConfig` or MAC spec for every GEMM layer; a dict
        ``{layer name or fnmatch pattern: config or None}`` (``"*"`` for the rest;
        a key that names no layer is an error; ``None`` keeps a layer float); or
        a callable ``(name, module) -> config or None``.
    seed
        Base seed of every layer's random bits. Layer ids number the converted
        GEMM layers 0, 1, ... in ``named_modules`` order, then the output
        quantizers.
    outputs
        Output quantizers for the non-GEMM layers: a spec (``"e4m3:rn"``), a
        ``(forward, backward)`` pair, a :class:`sim.Quantizer` (copied per
        layer), or a dict ``{kind: one of these}`` with kinds ``norm``,
        ``activation``, ``softmax``, ``pool`` (``"*"`` for all).
    strict
        Raise ``ValueError`` (with the table) if anything convertible stayed
        float: a GEMM layer or functional GEMM the simulator cannot emulate, or,
        with ``outputs``, a non-GEMM layer or call without an output quantizer.
        Layers the configuration excluded on purpose do not count.
    trace
        Look for functional GEMMs (``torch.matmul`` in ``forward``) with
        ``torch.fx`` (skipped, and said so in the report, if the model does not trace).

    Returns the converted model (a deep copy unless ``inplace``); its
    ``srmac_report`` attribute is the :class:`ConversionReport`. Unless
    ``strict``, a warning names the GEMMs left in float.
    """
    quantizers = _output_quantizers(outputs)
    if not inplace:
        model = copy.deepcopy(model)
    functional, trace_error = ([], None)
    if trace:  # before the swap: a converted layer is a leaf of the trace anyway
        functional, trace_error = _functional_calls(model, bool(quantizers))
    report = ConversionReport()
    skip: list[str] = []  # prefixes whose children are not visited
    targets, others = [], []
    for name, mod in model.named_modules():
        if any(name.startswith(p + ".") for p in skip):
            continue
        if isinstance(mod, (SeededModule, out_q.OutputQuantized)):  # converted before
            if isinstance(mod, QLayerMixin):
                report.rows.append(ReportRow(name, type(mod).__name__, "emulated",
                                             "already emulated", gemm=True))
            skip.append(name)
            continue
        qcls, why = _emulated_class(mod)
        if qcls is not None:
            targets.append((name, mod, qcls))
            skip.append(name)
            continue
        reason = why or _not_emulated_reason(mod)
        if reason:
            report.rows.append(ReportRow(name, type(mod).__name__, "float", reason,
                                         leftover=True, gemm=True))
            skip.append(name)
        elif out_q.kind_of(mod) is not None:
            others.append((name, mod))
    resolve = _Resolver(config, [n for n, _, _ in targets])
    replaced = {}
    layer_id = 0
    for name, mod, qcls in targets:
        cfg, why = resolve(name, mod)
        if cfg is None:
            report.rows.append(ReportRow(name, type(mod).__name__, "float", why, gemm=True))
            continue
        replaced[name] = qcls.from_float(mod, cfg, layer_id=layer_id, seed=seed)
        report.rows.append(ReportRow(name, type(mod).__name__, "emulated",
                                     f"{qcls.__name__}, fwd {cfg.fwd.spec()}", gemm=True))
        layer_id += 1
    for name, mod in others:
        kind = out_q.kind_of(mod)
        template = quantizers.get(kind)
        if template is None:
            report.rows.append(ReportRow(
                name, type(mod).__name__, "float",
                f"{kind}: float32 arithmetic" + (f", no output quantizer for '{kind}'"
                                                 if quantizers else ""),
                leftover=bool(quantizers)))
            continue
        out_q.attach(mod, template.copy(layer_id=layer_id, seed=seed))
        report.rows.append(ReportRow(name, type(mod).__name__, "quantized output",
                                     f"{mod.out_quant.extra_repr()}"))
        layer_id += 1
    report.rows += functional
    if trace and trace_error:
        report.rows.append(ReportRow("(forward)", "-", "float",
                                     f"not checked for functional GEMMs (torch.fx: {trace_error})"))
    if "" in replaced:
        model = replaced[""]  # the model itself was a single layer
    for name, q in replaced.items():
        if name:
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attr, q)
    model.srmac_report = report
    if report.leftovers and strict:
        raise ValueError(f"quantize_model(strict=True): {len(report.leftovers)} layer(s) stayed "
                         f"float:\n{report.table(report.leftovers)}")
    gemms = [r for r in report.leftovers if r.gemm]
    if gemms:
        warnings.warn(f"quantize_model: {len(gemms)} GEMM(s) stay float32 "
                      f"({', '.join(r.layer or r.type for r in gemms[:5])}"
                      f"{' ...' if len(gemms) > 5 else ''}): see model.srmac_report",
                      stacklevel=2)
    return model


def qlayers(model: nn.Module) -> Iterator[tuple[str, QLayerMixin]]:
    """The emulated GEMM layers of ``model`` with their names."""
    for name, m in model.named_modules():
        if isinstance(m, QLayerMixin):
            yield name, m


def set_config(model: nn.Module, config: LayerConfig | str | dict | Callable) -> None:
    """Set the configuration of every emulated layer (same forms as :func:`quantize_model`;
    a dict must cover every layer, directly, by a pattern or by ``"*"``)."""
    layers = list(qlayers(model))
    resolve = _Resolver(config, [n for n, _ in layers])
    for name, m in layers:
        cfg, why = resolve(name, m)
        if cfg is None:
            raise ValueError(f"no configuration for layer {name!r} ({why}): add it or a '*' "
                             "default")
        m.set_config(cfg)


def total_macs(model: nn.Module) -> int:
    """Emulated MACs performed so far by all layers of ``model``."""
    return sum(m.macs for _, m in qlayers(model))


def reset_macs(model: nn.Module) -> None:
    for _, m in qlayers(model):
        m.macs = 0
