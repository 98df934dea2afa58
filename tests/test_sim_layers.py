"""sim layers: float equivalence with an FP32 RN MAC, code-for-code agreement with ref.

The code-for-code checks recompute every GEMM independently (tests/sim_oracle.py).
"""

import pytest
import sim_oracle as oracle
import torch
import torch.nn as nn
import torch.nn.functional as F

import ref
import sim
from sim.seeds import Stream, derive_seed

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FP32_RN = "fp32:fp32:rn"
LOWP = "e5m2:e6m5:sr_eager:4"


def _pair_grads(a, b, x_shape, seed=0):
    torch.manual_seed(seed)
    x1 = torch.randn(*x_shape, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    y1, y2 = a(x1), b(x2)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    return (y1, y2), (x1.grad, x2.grad)


def test_qlinear_fp32_matches_linear():
    torch.manual_seed(1)
    lin = nn.Linear(20, 7)
    q = sim.QLinear.from_float(lin, FP32_RN)
    (y1, y2), (gx1, gx2) = _pair_grads(lin, q, (3, 5, 20))  # leading dims
    torch.testing.assert_close(y2, y1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx2, gx1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(q.weight.grad, lin.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(q.bias.grad, lin.bias.grad, rtol=1e-5, atol=1e-5)
    assert q.macs == 15 * 20 * 7 * 3 + 15 * 7  # three GEMMs + the bias reduction


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 1, 1), (2, 0, 2), (3, 2, 1),
                                                     (1, 3, 1)])
def test_qconv2d_fp32_matches_conv2d(stride, padding, dilation):
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 4, 3, stride=stride, padding=padding, dilation=dilation)
    q = sim.QConv2d.from_float(conv, FP32_RN)
    (y1, y2), (gx1, gx2) = _pair_grads(conv, q, (2, 3, 9, 8))
    torch.testing.assert_close(y2, y1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx2, gx1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(q.weight.grad, conv.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(q.bias.grad, conv.bias.grad, rtol=1e-4, atol=1e-4)


def _seed(layer, stream, call=0, training=1):
    return derive_seed(layer.seed, layer.layer_id, call, training, stream, 0)


def _codes(t, fmt):
    return ref.encode(t.detach().to(torch.float64), fmt)


def test_qlinear_lowp_forward_and_backward_are_ref_codes():
    cfg = ref.parse_mac(LOWP)
    torch.manual_seed(3)
    q = sim.QLinear(9, 4, config=LOWP, layer_id=5, seed=11)
    x = torch.randn(6, 9, requires_grad=True)
    y = q(x)
    xc, wc = ref.encode(x.detach(), cfg.in_fmt), ref.encode(q.weight.detach(), cfg.in_fmt)
    bc = ref.encode(q.bias.detach().reshape(1, -1), cfg.acc_fmt)
    want = ref.matmul(xc, wc.T.contiguous(), cfg, bc, seed=_seed(q, Stream.FWD_GEMM))
    assert torch.equal(_codes(y, cfg.acc_fmt), want)
    # backward: dx = G W and dW = G^T x on the same MAC, gradient rounded to nearest
    g = torch.randn(6, 4) * 0.1
    y.backward(g)
    gc = ref.encode(g, cfg.in_fmt)
    want_dx = ref.matmul(gc, wc, cfg, seed=_seed(q, Stream.BWD_INPUT_GEMM))
    want_dw = ref.matmul(gc.T.contiguous(), xc, cfg, seed=_seed(q, Stream.BWD_WEIGHT_GEMM))
    assert torch.equal(_codes(x.grad, cfg.acc_fmt), want_dx)
    assert torch.equal(_codes(q.weight.grad, cfg.acc_fmt), want_dw)


def test_qconv2d_lowp_forward_is_ref_codes():
    cfg = ref.parse_mac("e4m3:e6m5:sr_lazy:3")
    torch.manual_seed(4)
    q = sim.QConv2d(2, 3, 3, stride=2, padding=1, config=cfg, layer_id=1, seed=7)
    x = torch.randn(2, 2, 6, 5)
    y = q(x)
    # independent im2col on the rounded float values, then encode
    xv = ref.decode(ref.encode(x, cfg.in_fmt), cfg.in_fmt)
    cols = F.unfold(xv, 3, padding=1, stride=2).transpose(1, 2).reshape(-1, 18)
    wc = ref.encode(q.weight.detach().reshape(3, -1), cfg.in_fmt)
    bc = ref.encode(q.bias.detach().reshape(1, -1), cfg.acc_fmt)
    want = ref.matmul(ref.encode(cols, cfg.in_fmt), wc.T.contiguous(), cfg, bc,
                      seed=_seed(q, Stream.FWD_GEMM))
    got = _codes(y.permute(0, 2, 3, 1).reshape(-1, 3), cfg.acc_fmt)
    assert torch.equal(got, want)


def test_seeds_deterministic_and_advance():
    torch.manual_seed(5)
    a = sim.QLinear(16, 8, config=LOWP, seed=3)
    b = sim.QLinear(16, 8, config=LOWP, seed=3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 16)
    ya1, ya2 = a(x), a(x)
    yb1 = b(x)
    assert torch.equal(ya1, yb1)  # same seed, same call index: same bits
    assert not torch.equal(ya1, ya2)  # the next call draws new random bits
    c = sim.QLinear(16, 8, config=LOWP, seed=4)
    c.load_state_dict(a.state_dict())
    assert not torch.equal(c(x), ya1)


def test_quantize_model_and_set_config():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    qm = sim.quantize_model(model, FP32_RN, seed=9)
    assert isinstance(qm[0], sim.QConv2d) and isinstance(qm[3], sim.QLinear)
    assert isinstance(model[0], nn.Conv2d) and not isinstance(model[0], sim.QConv2d)  # copy
    assert [m.layer_id for _, m in sim.qlayers(qm)] == [0, 1]
    x = torch.randn(2, 1, 6, 6)
    torch.testing.assert_close(qm(x), model(x), rtol=1e-5, atol=1e-5)
    sim.set_config(qm, {"3": "e5m2:e6m5:rn", "*": FP32_RN})
    assert qm[3].config.fwd == ref.parse_mac("e5m2:e6m5:rn")
    assert qm[0].config.fwd == ref.parse_mac(FP32_RN)
    assert sim.total_macs(qm) > 0


def test_layer_config_parts_and_errors():
    cfg = sim.make_layer_config(LOWP, bwd_weight="e5m2:fp16:rn", grad="sr:6", weight="e4m3:rn")
    assert cfg.bwd_input == cfg.fwd and cfg.bwd_weight.acc_fmt == ref.FP16
    assert cfg.grad == sim.QuantSpec("sr", 6) and cfg.weight.fmt == ref.E4M3
    with pytest.raises(ValueError, match="rbits"):
        sim.parse_quantizer("sr")
    with pytest.raises(ValueError, match="no rounding"):
        sim.parse_quantizer("e5m2")
    with pytest.raises(ValueError, match="groups"):  # torch's own check, as nn.Conv2d
        sim.QConv2d(3, 2, 3, groups=2)


@pytest.mark.parametrize("fmt", ["e6m5", "e5m2", "e4m3", "fp16", "e6m5:nosub:sat"])
def test_table_decode_is_ref_decode(fmt):
    from sim.gemm import decode

    f = ref.parse_format(fmt)
    codes = torch.randperm(1 << f.width)[:3000].reshape(-1, 8)
    got, want = decode(codes, f), ref.decode(codes, f)
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    ok = ~torch.isnan(want)
    assert torch.equal(got[ok], want[ok])
    assert torch.equal(torch.signbit(got[ok]), torch.signbit(want[ok]))  # -0 kept


CONV_CASES = [  # (class, constructor kwargs, input shape)
    (nn.Conv2d, dict(in_channels=4, out_channels=6, kernel_size=3, padding=1, groups=2), (2, 4, 6, 5)),
    (nn.Conv2d, dict(in_channels=4, out_channels=8, kernel_size=3, stride=2, padding=1, groups=4),
     (2, 4, 7, 6)),  # depthwise, channel multiplier 2
    (nn.Conv2d, dict(in_channels=3, out_channels=2, kernel_size=4, padding="same"), (2, 3, 6, 7)),
    (nn.Conv2d, dict(in_channels=2, out_channels=3, kernel_size=3, padding="same", dilation=2,
                     padding_mode="reflect"), (2, 2, 7, 6)),
    (nn.Conv2d, dict(in_channels=2, out_channels=4, kernel_size=3, stride=2, padding=2,
                     padding_mode="replicate", groups=2), (2, 2, 7, 8)),
    (nn.Conv2d, dict(in_channels=2, out_channels=3, kernel_size=(3, 2), stride=(1, 2),
                     padding=(1, 2), padding_mode="circular"), (2, 2, 5, 6)),
    (nn.Conv1d, dict(in_channels=4, out_channels=6, kernel_size=3, padding="same", groups=2,
                     padding_mode="reflect"), (2, 4, 9)),
    (nn.Conv1d, dict(in_channels=3, out_channels=4, kernel_size=5, stride=2, padding=1), (3, 3, 11)),
]
CONV_IDS = [f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(CONV_CASES)]


@pytest.mark.parametrize("cls,kw,shape", CONV_CASES, ids=CONV_IDS)
def test_conv_fp32_matches_torch(cls, kw, shape):
    """Every group / padding / padding-mode case computes the convolution and its gradients."""
    torch.manual_seed(7)
    conv = cls(**kw)
    q = sim.quantize_model(conv, FP32_RN)
    assert isinstance(q, (sim.QConv1d, sim.QConv2d))
    (y1, y2), (gx1, gx2) = _pair_grads(conv, q, shape)
    torch.testing.assert_close(y2, y1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx2, gx1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(q.weight.grad, conv.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(q.bias.grad, conv.bias.grad, rtol=1e-4, atol=1e-4)


def _run(layer, *inputs, seed=0):
    """Forward and backward with a random output gradient; returns (y, g, input grads)."""
    xs = [t.detach().clone().requires_grad_() for t in inputs]
    y = layer(*xs)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed)) * 0.3
    y.backward(g)
    return y, g, [t.grad for t in xs]


SR_CFG = sim.make_layer_config("e4m3:e6m5:sr_eager:3", bwd_input="e5m2:e6m5:sr_lazy:4",
                               bwd_weight="e5m2:fp16:sr_eager:2", grad="sr:4")


@pytest.mark.parametrize("groups,padding,mode", [(2, 1, "zeros"), (4, "same", "zeros"),
                                                 (1, "same", "reflect")])
def test_grouped_conv_gemm_bits_are_ref_codes(groups, padding, mode):
    """Forward, dx and dW of a grouped / depthwise conv: one ref.matmul per group."""
    torch.manual_seed(8)
    q = sim.QConv2d(4, 8, 3, padding=padding, groups=groups, padding_mode=mode, config=SR_CFG,
                    layer_id=3, seed=11)
    x = torch.randn(2, 4, 5, 6)
    y, g, (gx,) = _run(q, x)
    want = oracle.conv2d(q, x, g, (1, 1, 1, 1))
    cfg = q.config
    assert torch.equal(oracle.codes(y.permute(0, 2, 3, 1).reshape(-1, 8), cfg.fwd.acc_fmt), want["fwd"])
    assert torch.equal(oracle.codes(q.weight.grad, cfg.bwd_weight.acc_fmt), want["dW"])
    assert torch.equal(oracle.codes(q.bias.grad, cfg.bwd_weight.acc_fmt), want["db"])
    if mode == "zeros":
        assert torch.equal(oracle.codes(gx, cfg.bwd_input.acc_fmt), want["dx"])
    # the check can fail: another layer id gives other bits
    q2 = sim.QConv2d(4, 8, 3, padding=padding, groups=groups, padding_mode=mode, config=SR_CFG,
                     layer_id=4, seed=11)
    q2.load_state_dict({k: v for k, v in q.state_dict().items() if k != "srmac_rng"}, strict=False)
    y2, *_ = _run(q2, x)
    assert not torch.equal(y2, y)


def test_conv1d_gemm_bits_are_ref_codes():
    torch.manual_seed(9)
    q = sim.QConv1d(4, 6, 3, padding=1, groups=2, config=SR_CFG, layer_id=1, seed=2)
    x = torch.randn(3, 4, 7)
    y, g, (gx,) = _run(q, x)
    want = oracle.conv1d(q, x, g, (1, 1))
    cfg = q.config
    assert torch.equal(oracle.codes(y.permute(0, 2, 1).reshape(-1, 6), cfg.fwd.acc_fmt), want["fwd"])
    assert torch.equal(oracle.codes(gx, cfg.bwd_input.acc_fmt), want["dx"])
    assert torch.equal(oracle.codes(q.weight.grad, cfg.bwd_weight.acc_fmt), want["dW"])


def test_qmatmul_attention_bits_are_ref_codes():
    """q @ k^T of (batch, heads, T, d) tensors: one ref.matmul per batch entry, PE rows e*M + i."""
    torch.manual_seed(10)
    mm = sim.QMatMul(config=SR_CFG, layer_id=2, seed=5)
    a, b = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 5, 4)
    y, g, (ga, gb) = _run(mm, a, b)
    want = oracle.matmul(mm, a, b, g)
    cfg = mm.config
    assert torch.equal(oracle.codes(y, cfg.fwd.acc_fmt), want["fwd"])
    assert torch.equal(oracle.codes(ga, cfg.bwd_input.acc_fmt), want["da"])
    assert torch.equal(oracle.codes(gb, cfg.bwd_weight.acc_fmt), want["db"])


def test_qmatmul_broadcast_and_vectors_follow_torch_matmul():
    torch.manual_seed(11)
    mm = sim.QMatMul(config=FP32_RN)
    for sa, sb in [((2, 3, 4, 5), (5, 6)), ((4, 5), (3, 5, 2)), ((5,), (2, 5, 3)), ((2, 1, 4, 5),
                   (3, 5, 2)), ((5,), (5,)), ((3, 5), (5,))]:
        a = torch.randn(sa, requires_grad=True)
        b = torch.randn(sb, requires_grad=True)
        y = mm(a, b)
        ref_y = torch.matmul(a, b)
        assert y.shape == ref_y.shape
        torch.testing.assert_close(y, ref_y, rtol=1e-5, atol=1e-5)
        ga, gb = torch.autograd.grad(y.sum(), (a, b))
        wa, wb = torch.autograd.grad(ref_y.sum(), (a, b))
        torch.testing.assert_close(ga, wa, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gb, wb, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="shape mismatch"):
        mm(torch.ones(2, 3), torch.ones(4, 2))


def test_broadcast_operand_gradient_is_one_chain():
    """b shared by every batch entry: db is one chain over (entry, row), PEs (k, n)."""
    cfg = ref.parse_mac("e5m2:e6m5:sr_lazy:3")
    torch.manual_seed(12)
    a = torch.randn(3, 4, 5, requires_grad=True)
    b = torch.randn(5, 2, requires_grad=True)
    y = sim.matmul(a, b, cfg, seed=4, step=2)
    g = torch.randn(3, 4, 2)
    y.backward(g)
    s = derive_seed(4, 0, 2, 1, Stream.BWD_WEIGHT_GEMM)
    at = ref.encode(a.detach().reshape(12, 5).T.contiguous(), cfg.in_fmt)  # columns (entry, row)
    want = ref.matmul(at, ref.encode(g.reshape(12, 2), cfg.in_fmt), cfg, seed=s)
    assert torch.equal(oracle.codes(b.grad, cfg.acc_fmt), want)


def test_side_by_side_chains_equal_ref_matmul():
    """sim.gemm.bgemm_codes, side by side with ref.mac (CUDA's path) or group by group:
    ref.matmul's codes either way."""
    from sim.gemm import bgemm_codes

    for spec in ("e5m2:e6m5:sr_eager:4", "e4m3:fp16:sr_lazy:5", "e5m2:e6m5:rn"):
        cfg = ref.parse_mac(spec)
        g = torch.Generator().manual_seed(13)
        a = ref.encode(torch.randn(5, 6, 7, generator=g) * 4, cfg.in_fmt)
        b = ref.encode(torch.randn(5, 7, 3, generator=g), cfg.in_fmt)
        c = ref.encode(torch.randn(5, 1, 3, generator=g), cfg.acc_fmt)
        rows = torch.arange(30).reshape(5, 6) * 3 + 1
        cols = torch.arange(15).reshape(5, 3) + 7
        got = bgemm_codes(a, b, cfg, 99, c, rows=rows, cols=cols, side_by_side=True)
        assert torch.equal(got, bgemm_codes(a, b, cfg, 99, c, rows=rows, cols=cols,
                                            side_by_side=False))
        for e in range(5):
            want = oracle.mm(a[e], b[e], cfg, 99, c[e], rows=rows[e], cols=cols[e])
            assert torch.equal(got[e], want), spec


def test_eval_is_deterministic_and_the_checkpoint_carries_the_seeds():
    torch.manual_seed(14)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    q = sim.quantize_model(model, "e5m2:e6m5:sr_eager:2", seed=3)
    x = torch.randn(8, 6)
    q.train()
    q(x).sum().backward()
    q(x)
    assert [m.step for _, m in sim.qlayers(q)] == [2, 2]
    q.eval()
    e1, e2 = q(x), q(x)
    assert torch.equal(e1, e2)  # evaluation does not advance the seeds
    assert q[0].step == 2
    # the same checkpoint in a model built with other seeds evaluates to the same bits
    other = sim.quantize_model(model, "e5m2:e6m5:sr_eager:2", seed=99).eval()
    assert not torch.equal(other(x), e1)
    other.load_state_dict(q.state_dict())
    assert torch.equal(other(x), e1)
    assert (other[0].seed, other[0].layer_id, other[0].step) == (3, 0, 2)
    # training steps change the bits; a float checkpoint (no seeds) loads too
    q.train()
    q(x)
    q.eval()
    assert not torch.equal(q(x), e1)
    other.load_state_dict(model.state_dict())
    assert other[0].step == 2


def test_meta_tensors_and_vmap():
    q = sim.QLinear(5, 3, config="e5m2:e6m5:sr_eager:4", device="meta")
    assert q(torch.empty(4, 5, device="meta")).shape == (4, 3)
    c = sim.QConv2d(2, 4, 3, padding="same", groups=2, device="meta")
    assert c(torch.empty(1, 2, 6, 6, device="meta")).shape == (1, 4, 6, 6)
    lin = sim.QLinear(5, 3, config="e5m2:e6m5:sr_eager:4").eval()
    xs = torch.randn(4, 2, 5)
    v = torch.func.vmap(lin)(xs)
    assert torch.equal(v, torch.stack([lin(xs[i]) for i in range(4)]))


def test_side_by_side_path_gives_the_same_model_bits(monkeypatch):
    """CUDA runs batched GEMMs side by side: forcing that path on the CPU changes no bit
    of a model with depthwise, grouped Conv1d and batched QMatMul (forward and gradients)."""
    import sim.gemm
    import sim.ops

    torch.manual_seed(15)
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.Flatten(2),
                          nn.Conv1d(4, 4, 3, padding=1, groups=2))
    mm = sim.QMatMul(config=SR_CFG, seed=3)
    x = torch.randn(2, 4, 3, 3)

    def run():
        q = sim.quantize_model(model, SR_CFG, seed=4)
        xx = x.clone().requires_grad_()
        t = q(xx)
        y = mm(t, t.transpose(1, 2))
        y.backward(torch.ones_like(y))
        mm.step = 0
        return [y.detach(), xx.grad, q[0].weight.grad, q[2].weight.grad]

    plain = run()
    forced = sim.gemm.bgemm_codes

    def side_by_side(*args, **kw):
        kw["side_by_side"] = args[0].shape[0] > 1 and args[0].shape[2] <= 64
        return forced(*args, **kw)

    monkeypatch.setattr(sim.gemm, "bgemm_codes", side_by_side)
    monkeypatch.setattr(sim.ops, "bgemm_codes", side_by_side)
    for a, b in zip(plain, run(), strict=True):
        assert torch.equal(a, b)
