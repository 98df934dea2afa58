"""``ref.sr_matmul``: the autograd-friendly float entry point.

Forward: ``decode(matmul(encode(A), encode(B)))`` code for code; backward:
straight-through, i.e. exactly the gradients of ``A @ B``.
"""

import numpy as np
import pytest
import torch

import ref
from ref import BF16, E4M3, E5M2, E6M5, FP16, MacConfig

DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]
CONFIGS = [
    MacConfig(E5M2, E6M5, "sr_eager", 4),
    MacConfig(E5M2, E6M5, "sr_lazy", 2),
    MacConfig(E4M3, FP16, "rn"),
    MacConfig(E4M3, BF16, "rz"),
]
IDS = [c.spec() for c in CONFIGS]


def inputs(M, K, N, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(M, K, generator=g, dtype=torch.float64) * 3
    B = torch.randn(K, N, generator=g, dtype=torch.float64)
    return A.to(dtype).to(device), B.to(dtype).to(device)


def expected_codes(A, B, cfg, mac_seed, **enc):
    """Codes of matmul(encode(A), encode(B)); ``enc``: encode's rounding and its arguments.

    With SR input rounding, sr_matmul documents seeds 2*s for A and 2*s+1 for B.
    """
    enc_b = dict(enc)
    if "seed" in enc:
        enc = {**enc, "seed": 2 * enc["seed"]}
        enc_b["seed"] = 2 * enc_b["seed"] + 1
    a = ref.encode(
        A.detach().cpu().double().numpy(),
        cfg.in_fmt,
        enc.get("rounding", "rn"),
        **{k: v for k, v in enc.items() if k != "rounding"},
    )
    b = ref.encode(
        B.detach().cpu().double().numpy(),
        cfg.in_fmt,
        enc_b.get("rounding", "rn"),
        **{k: v for k, v in enc_b.items() if k != "rounding"},
    )
    return ref.matmul(a, b, cfg, seed=mac_seed)


def out_codes(out, cfg):
    # Every accumulator value is exact in float32 / float64, so RN re-encoding is exact.
    return ref.encode(out.detach().cpu().double().numpy(), cfg.acc_fmt, "rn")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_forward_equals_codes(cfg, dtype, device, request):
    A, B = inputs(5, 16, 4, dtype, device)
    out = ref.sr_matmul(A, B, cfg, seed=11)
    assert out.dtype == dtype and out.device.type == device and out.shape == (5, 4)
    assert np.array_equal(out_codes(out, cfg), expected_codes(A, B, cfg, 11))
    # the value is the decoded accumulator code, not just close to it
    back = ref.decode(expected_codes(A, B, cfg, 11), cfg.acc_fmt)
    assert np.array_equal(out.cpu().double().numpy(), back)


def test_forward_takes_spec_strings_and_seeds_matter():
    A, B = inputs(4, 32, 3, torch.float32, "cpu", seed=1)
    a = ref.sr_matmul(A, B, "e5m2:e6m5:sr_eager:2", seed=5)
    b = ref.sr_matmul(A, B, MacConfig(E5M2, E6M5, "sr_eager", 2), seed=5)
    assert torch.equal(a, b)
    c = ref.sr_matmul(A, B, MacConfig(E5M2, E6M5, "sr_eager", 2), seed=6)
    assert not torch.equal(a, c)


def test_sr_input_rounding():
    cfg = MacConfig(E5M2, E6M5, "sr_lazy", 3)
    A, B = inputs(3, 8, 2, torch.float32, "cpu", seed=2)
    out = ref.sr_matmul(A, B, cfg, seed=1, in_rounding="sr", in_rbits=4, in_seed=9)
    exp = expected_codes(A, B, cfg, 1, rounding="sr", rbits=4, seed=9)
    assert np.array_equal(out_codes(out, cfg), exp)
    rz = ref.sr_matmul(A, B, cfg, seed=1, in_rounding="rz")
    assert np.array_equal(out_codes(rz, cfg), expected_codes(A, B, cfg, 1, rounding="rz"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cfg", CONFIGS[:2], ids=IDS[:2])
def test_straight_through_gradients(cfg, device):
    A0, B0 = inputs(6, 10, 5, torch.float32, device, seed=3)
    G = torch.randn(6, 5, generator=torch.Generator().manual_seed(4)).to(device)
    A, B = A0.clone().requires_grad_(), B0.clone().requires_grad_()
    (ref.sr_matmul(A, B, cfg, seed=2) * G).sum().backward()
    A2, B2 = A0.clone().requires_grad_(), B0.clone().requires_grad_()
    ((A2 @ B2) * G).sum().backward()
    assert torch.equal(A.grad, A2.grad)
    assert torch.equal(B.grad, B2.grad)
    # only one side requiring grad
    B3 = B0.clone().requires_grad_()
    (ref.sr_matmul(A0, B3, cfg, seed=2) * G).sum().backward()
    assert torch.equal(B3.grad, B2.grad)


def test_gradcheck_style_linearity():
    """The backward is exactly linear in the upstream gradient (no rounding in it)."""
    cfg = CONFIGS[0]
    A = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    B = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    out = ref.sr_matmul(A, B, cfg, seed=0)
    g = torch.ones_like(out)
    ga, gb = torch.autograd.grad(out, (A, B), g)
    assert torch.equal(ga, g @ B.detach().T) and torch.equal(gb, A.detach().T @ g)


@pytest.mark.parametrize("device", DEVICES)
def test_batched_leading_dims(device):
    cfg = CONFIGS[0]
    g = torch.Generator().manual_seed(8)
    A = (torch.randn(2, 3, 7, 12, generator=g)).to(device).requires_grad_()
    B = torch.randn(12, 5, generator=g).to(device).requires_grad_()
    out = ref.sr_matmul(A, B, cfg, seed=3)
    assert out.shape == (2, 3, 7, 5)
    flat = ref.sr_matmul(A.detach().reshape(42, 12), B.detach(), cfg, seed=3)
    assert torch.equal(out.detach(), flat.reshape(2, 3, 7, 5))
    out.sum().backward()
    ones = torch.ones(2, 3, 7, 5, device=device)
    assert torch.equal(A.grad, ones @ B.detach().T)
    assert torch.equal(B.grad, A.detach().reshape(42, 12).T @ ones.reshape(42, 5))
    v = ref.sr_matmul(torch.randn(12, generator=g).to(device), B.detach(), cfg)  # 1-D A: a vector
    assert v.shape == (5,)


@pytest.mark.parametrize(
    "A_shape,B_shape",
    [((2, 3), (4, 2)), ((2, 3), (2,)), ((3,), (2, 3)), ((2, 3), (3, 2, 1)), ((5, 2, 3), (2, 3))],
)
def test_shape_errors(A_shape, B_shape):
    with pytest.raises(ValueError, match="shape mismatch") as exc:
        ref.sr_matmul(torch.ones(A_shape), torch.ones(B_shape), CONFIGS[0])
    assert str(tuple(B_shape)) in str(exc.value)


def test_non_tensor_and_bad_cfg_errors():
    with pytest.raises(ValueError, match="torch"):
        ref.sr_matmul(np.ones((2, 3)), np.ones((3, 2)), CONFIGS[0])
    with pytest.raises(ValueError, match="'e9'"):
        ref.sr_matmul(torch.ones(2, 3), torch.ones(3, 2), "e9:e6m5:rn")


# ---- torch.matmul semantics, dtypes, torch.library integration -----------------------------

def _codes_of_batched(A, B, cfg, seed):
    """Expected codes: batch entry e (flattened broadcast index) on PE rows e*M ..."""
    from ref.backend import TorchOps

    a1 = A.unsqueeze(0) if A.dim() == 1 else A
    b1 = B.unsqueeze(-1) if B.dim() == 1 else B
    batch = torch.broadcast_shapes(a1.shape[:-2], b1.shape[:-2])
    m, k, n = a1.shape[-2], a1.shape[-1], b1.shape[-1]
    ac = ref.encode(a1.expand(*batch, m, k).reshape(-1, m, k).double(), cfg.in_fmt)
    bc = ref.encode(b1.expand(*batch, k, n).reshape(-1, k, n).double(), cfg.in_fmt)
    out = []
    for e in range(ac.shape[0]):
        state = ref.prng.seed_state(TorchOps(), seed, torch.arange(e * m, (e + 1) * m)[:, None],
                                    torch.arange(n)[None, :])
        out.append(ref.matmul(ac[e], bc[e], cfg, state=state))
    return torch.stack(out)


@pytest.mark.parametrize("sa,sb", [((2, 3, 4), (2, 4, 5)), ((3, 1, 2, 4), (2, 4, 3)),
                                   ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((4,), (4,)),
                                   ((2, 3), (3,))])
def test_matmul_semantics(sa, sb):
    cfg = CONFIGS[0]
    g = torch.Generator().manual_seed(20)
    A = torch.randn(sa, generator=g, requires_grad=True)
    B = torch.randn(sb, generator=g, requires_grad=True)
    out = ref.sr_matmul(A, B, cfg, seed=9)
    want = torch.matmul(A, B)
    assert out.shape == want.shape
    got = out_codes(out.reshape(-1), cfg).reshape(-1)
    assert np.array_equal(got, _codes_of_batched(A.detach(), B.detach(), cfg, 9).reshape(-1).numpy())
    # straight-through gradients: torch.matmul's
    gA, gB = torch.autograd.grad(out.sum(), (A, B))
    wA, wB = torch.autograd.grad(want.sum(), (A, B))
    torch.testing.assert_close(gA, wA)
    torch.testing.assert_close(gB, wB)


def test_k_zero_gives_zeros():
    out = ref.sr_matmul(torch.ones(3, 0), torch.ones(0, 2), CONFIGS[0])
    assert out.shape == (3, 2) and torch.equal(out, torch.zeros(3, 2))
    assert ref.sr_matmul(torch.ones(2, 3, 0), torch.ones(2, 0, 4), CONFIGS[1]).shape == (2, 3, 4)


def test_dtype_rules_and_errors():
    cfg = CONFIGS[2]
    A32, B64 = torch.randn(2, 3), torch.randn(3, 2, dtype=torch.float64)
    out = ref.sr_matmul(A32, B64, cfg)
    assert out.dtype == torch.float64  # torch.promote_types
    assert torch.equal(out, ref.sr_matmul(A32.double(), B64, cfg))
    assert ref.sr_matmul(A32.bfloat16(), B64.bfloat16(), "e4m3:bf16:rn").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="integer dtype torch.int64.*ref.matmul"):
        ref.sr_matmul(torch.ones(2, 3, dtype=torch.int64), torch.ones(3, 2), cfg)
    with pytest.raises(ValueError, match="integer dtype torch.bool"):
        ref.sr_matmul(torch.ones(2, 3), torch.ones(3, 2, dtype=torch.bool), cfg)
    with pytest.raises(ValueError, match="complex"):
        ref.sr_matmul(torch.ones(2, 3, dtype=torch.complex64), torch.ones(3, 2), cfg)
    with pytest.raises(ValueError, match="do not broadcast"):
        ref.sr_matmul(torch.ones(2, 3, 4), torch.ones(3, 4, 2), cfg)


def test_custom_op_meta_compile_vmap():
    cfg = CONFIGS[0]
    m = ref.sr_matmul(torch.empty(5, 2, 3, device="meta"), torch.empty(3, 4, device="meta"), cfg)
    assert m.shape == (5, 2, 4) and m.device.type == "meta"
    A, B = torch.randn(4, 6), torch.randn(6, 3)

    def f(a, b):
        return ref.sr_matmul(a, b, cfg, seed=5).relu()

    torch._dynamo.reset()
    explain = torch._dynamo.explain(f)(A, B)
    assert explain.graph_break_count == 0
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(A, B), f(A, B))
    stack = torch.randn(3, 4, 6)
    v = torch.func.vmap(lambda a: ref.sr_matmul(a, B, cfg, seed=5))(stack)
    assert torch.equal(v, torch.stack([ref.sr_matmul(stack[i], B, cfg, seed=5) for i in range(3)]))
    assert torch.ops.srmac.sr_matmul.default is not None  # registered with torch.library
