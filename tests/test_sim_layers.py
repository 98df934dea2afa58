"""sim layers: float equivalence with an FP32 RN MAC, code-for-code agreement with ref."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ref
import sim
from sim.seeds import Stream, derive_seed

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
