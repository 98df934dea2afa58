"""An independent recomputation of every GEMM of the emulated layers with ``ref.matmul``.

Written from the documented contract (docs/training.md), not from sim/'s code:
operands rounded with ``ref.encode`` (SR words from ``ref.encode``'s own
``seed=``), im2col with ``F.unfold`` on *values*, PE generators from
``ref.prng.seed_state`` at the documented rows and columns, and one
``ref.matmul`` per GEMM (per group, per batch entry). Each function returns
the expected accumulator codes of the forward output and of the gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import ref
from ref.backend import TorchOps
from sim.seeds import Stream, derive_seed


def seed(layer, stream, *, step=0, training=True, shard=0):
    return derive_seed(layer.seed, layer.layer_id, step, int(training), stream, shard)


def enc(x, fmt, spec, stream_seed):
    """Operand codes as the documented rounding (``spec``: the layer's QuantSpec)."""
    x = x.detach().to(torch.float64)
    if spec.fmt is not None and spec.fmt != fmt:
        kw = {"rbits": spec.rbits, "seed": stream_seed} if spec.rounding == "sr" else {}
        x = ref.decode(ref.encode(x, spec.fmt, spec.rounding, **kw), spec.fmt)
        return ref.encode(x, fmt)
    if spec.rounding == "sr":
        return ref.encode(x, fmt, "sr", rbits=spec.rbits, seed=stream_seed)
    return ref.encode(x, fmt, spec.rounding)


def codes(t, fmt):
    """Codes of float values that are accumulator values (exact: RN re-encoding)."""
    return ref.encode(t.detach().to(torch.float64), fmt)


def mm(a, b, cfg, s, c=None, rows=None, cols=None):
    """ref.matmul on PEs (rows[i], cols[j]) of base seed ``s``."""
    if rows is None and cols is None:
        return ref.matmul(a, b, cfg, c, seed=s)
    rows = torch.arange(a.shape[0]) if rows is None else rows
    cols = torch.arange(b.shape[1]) if cols is None else cols
    state = ref.prng.seed_state(TorchOps(), s, rows.reshape(-1, 1), cols.reshape(1, -1))
    return ref.matmul(a, b, cfg, c, state=state)


def linear(layer, x, g, step=0):
    """Expected codes: fwd (rows, out), dx (rows, in), dW, db."""
    c = layer.config
    x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    f, fi, fw = c.fwd.in_fmt, c.bwd_input.in_fmt, c.bwd_weight.in_fmt
    s = lambda st, **k: seed(layer, st, step=step, **k)  # noqa: E731
    xc = enc(x2, f, c.act, s(Stream.Q_ACT))
    wc = enc(layer.weight, f, c.weight, s(Stream.Q_WEIGHT))
    bc = None if layer.bias is None else ref.encode(layer.bias.detach().reshape(1, -1), c.fwd.acc_fmt)
    out = {"fwd": mm(xc, wc.T.contiguous(), c.fwd, s(Stream.FWD_GEMM), bc)}
    gi = enc(g2, fi, c.grad, s(Stream.Q_GRAD))
    wi = enc(layer.weight, fi, c.weight, s(Stream.Q_WEIGHT if fi == f else Stream.Q_WEIGHT_BWD))
    out["dx"] = mm(gi, wi, c.bwd_input, s(Stream.BWD_INPUT_GEMM))
    gw = enc(g2, fw, c.grad, s(Stream.Q_GRAD if fw == fi else Stream.Q_GRAD_BWD))
    xw = enc(x2, fw, c.act, s(Stream.Q_ACT if fw == f else Stream.Q_ACT_BWD))
    out["dW"] = mm(gw.T.contiguous(), xw, c.bwd_weight, s(Stream.BWD_WEIGHT_GEMM))
    ones = ref.encode(torch.ones(1, g2.shape[0], dtype=torch.float64), fw)
    out["db"] = mm(ones, gw, c.bwd_weight, s(Stream.BIAS_GEMM)).reshape(-1)
    return out


def _pad(v, pads, mode):
    return F.pad(v, pads, mode="constant" if mode == "zeros" else mode)


def conv2d(layer, x, g, pads, step=0):
    """Expected codes of a QConv2d (stride 1 for dx): fwd, dx as (N, C, H, W), dW, db.

    ``pads``: (left, right, top, bottom) of the layer. Forward: per group, the
    im2col rows (n, p, q) of the padded, rounded input times the group's
    kernels, on PEs (row, global output channel). dW: per group, on PEs (o,
    column). dx (stride 1, zero padding): the full correlation of the gradient
    with the flipped kernel, per group, on PEs ((n, h, w), global input channel).
    """
    c = layer.config
    f, fi, fw = c.fwd.in_fmt, c.bwd_input.in_fmt, c.bwd_weight.in_fmt
    s = lambda st, **k: seed(layer, st, step=step, **k)  # noqa: E731
    G = layer.groups
    o, cg, kh, kw = layer.weight.shape
    og, n = o // G, x.shape[0]
    C = cg * G
    kk = kh * kw
    xv = ref.decode(enc(x, f, c.act, s(Stream.Q_ACT)), f)
    cols = F.unfold(_pad(xv, pads, layer.padding_mode), (kh, kw), dilation=layer.dilation,
                    stride=layer.stride)
    ho_wo = cols.shape[2]
    cols = cols.transpose(1, 2).reshape(n * ho_wo, C * kk)
    wc = enc(layer.weight, f, c.weight, s(Stream.Q_WEIGHT))
    bc = None if layer.bias is None else ref.encode(layer.bias.detach().reshape(1, -1), c.fwd.acc_fmt)
    fwd, dw = [], []
    gw = enc(g, fw, c.grad, s(Stream.Q_GRAD if fw == fi else Stream.Q_GRAD_BWD))
    gm = gw.permute(0, 2, 3, 1).reshape(-1, o)
    xwv = ref.decode(enc(x, fw, c.act, s(Stream.Q_ACT if fw == f else Stream.Q_ACT_BWD)), fw)
    colw = F.unfold(_pad(xwv, pads, layer.padding_mode), (kh, kw), dilation=layer.dilation,
                    stride=layer.stride).transpose(1, 2).reshape(n * ho_wo, C * kk)
    for gi in range(G):
        och = torch.arange(gi * og, (gi + 1) * og)
        a = ref.encode(cols[:, gi * cg * kk:(gi + 1) * cg * kk], f)
        b = wc[och].reshape(og, cg * kk).T.contiguous()
        fwd.append(mm(a, b, c.fwd, s(Stream.FWD_GEMM), None if bc is None else bc[:, och],
                      rows=torch.arange(a.shape[0]), cols=och))
        bw = ref.encode(colw[:, gi * cg * kk:(gi + 1) * cg * kk], fw)
        dw.append(mm(gm[:, och].T.contiguous(), bw, c.bwd_weight, s(Stream.BWD_WEIGHT_GEMM),
                     rows=och, cols=torch.arange(cg * kk)))
    out = {"fwd": torch.cat(fwd, 1), "dW": torch.cat(dw, 0).reshape(layer.weight.shape)}
    ones = ref.encode(torch.ones(1, gm.shape[0], dtype=torch.float64), fw)
    out["db"] = mm(ones, gm, c.bwd_weight, s(Stream.BIAS_GEMM)).reshape(-1)
    if tuple(layer.stride) == (1, 1) and layer.padding_mode == "zeros":
        gv = ref.decode(enc(g, fi, c.grad, s(Stream.Q_GRAD)), fi)
        d = layer.dilation
        full = (d[1] * (kw - 1) - pads[0], d[1] * (kw - 1) - pads[1],
                d[0] * (kh - 1) - pads[2], d[0] * (kh - 1) - pads[3])
        gcols = F.unfold(F.pad(gv, full), (kh, kw), dilation=d)  # (N, O*kk, H*W), (o, i, j)
        h, w = x.shape[2:]
        gcols = gcols.transpose(1, 2).reshape(n * h * w, o * kk)
        wi = enc(layer.weight, fi, c.weight, s(Stream.Q_WEIGHT if fi == f else Stream.Q_WEIGHT_BWD))
        wflip = wi.flip(2, 3)  # (O, Cg, kh, kw)
        dx = []
        for gi in range(G):
            och = torch.arange(gi * og, (gi + 1) * og)
            a = ref.encode(gcols[:, gi * og * kk:(gi + 1) * og * kk], fi)
            b = wflip[och].permute(0, 2, 3, 1).reshape(og * kk, cg)  # rows (o, i, j)
            dx.append(mm(a, b, c.bwd_input, s(Stream.BWD_INPUT_GEMM),
                         rows=torch.arange(a.shape[0]), cols=torch.arange(gi * cg, (gi + 1) * cg)))
        out["dx"] = torch.cat(dx, 1).reshape(n, h, w, C).permute(0, 3, 1, 2)
    return out


def matmul(layer, a, b, g, step=0):
    """Expected codes of QMatMul (same batch shape for a and b): fwd, da, db per entry.

    Batch entry e's PEs are rows e*M + i (forward, da) / e*K + k (db).
    """
    c = layer.config
    f, fi, fw = c.fwd.in_fmt, c.bwd_input.in_fmt, c.bwd_weight.in_fmt
    s = lambda st, **k: seed(layer, st, step=step, **k)  # noqa: E731
    m, k = a.shape[-2:]
    nn_ = b.shape[-1]
    A, B, Gr = a.reshape(-1, m, k), b.reshape(-1, k, nn_), g.reshape(-1, m, nn_)
    ac, bc = enc(A, f, c.act, s(Stream.Q_ACT)), enc(B, f, c.weight, s(Stream.Q_WEIGHT))
    gi = enc(Gr, fi, c.grad, s(Stream.Q_GRAD))
    bi = enc(B, fi, c.weight, s(Stream.Q_WEIGHT if fi == f else Stream.Q_WEIGHT_BWD))
    gw = enc(Gr, fw, c.grad, s(Stream.Q_GRAD if fw == fi else Stream.Q_GRAD_BWD))
    aw = enc(A, fw, c.act, s(Stream.Q_ACT if fw == f else Stream.Q_ACT_BWD))
    fwd, da, db = [], [], []
    for e in range(A.shape[0]):
        fwd.append(mm(ac[e], bc[e], c.fwd, s(Stream.FWD_GEMM), rows=torch.arange(e * m, (e + 1) * m)))
        da.append(mm(gi[e], bi[e].T.contiguous(), c.bwd_input, s(Stream.BWD_INPUT_GEMM),
                     rows=torch.arange(e * m, (e + 1) * m)))
        db.append(mm(aw[e].T.contiguous(), gw[e], c.bwd_weight, s(Stream.BWD_WEIGHT_GEMM),
                     rows=torch.arange(e * k, (e + 1) * k)))
    return {"fwd": torch.stack(fwd).reshape(*a.shape[:-2], m, nn_),
            "da": torch.stack(da).reshape(a.shape), "db": torch.stack(db).reshape(b.shape)}


class _As2d:
    """A QConv1d seen as the height-1 QConv2d it computes."""

    def __init__(self, layer):
        self.config, self.seed, self.layer_id = layer.config, layer.seed, layer.layer_id
        self.groups, self.padding_mode, self.bias = layer.groups, layer.padding_mode, layer.bias
        self.weight = layer.weight.detach().unsqueeze(2)
        self.stride, self.dilation = (1, layer.stride[0]), (1, layer.dilation[0])


def conv1d(layer, x, g, pads, step=0):
    """:func:`conv2d` of a QConv1d; ``pads``: (left, right)."""
    out = conv2d(_As2d(layer), x.unsqueeze(2), g.unsqueeze(2), (*pads, 0, 0), step)
    out["dW"] = out["dW"].squeeze(2)
    if "dx" in out:
        out["dx"] = out["dx"].squeeze(2)
    return out
