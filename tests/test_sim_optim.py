"""LowPrecisionSGD: rounding into the format, float equivalence, loss scaling."""

import copy

import pytest
import torch

import ref
import sim


def _params(seed=0):
    torch.manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(6, 5))
    b = torch.nn.Parameter(torch.randn(5))
    return [w, b]


def _set_grads(params, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-2 * scale


def _in_format(t, fmt):
    t64 = t.detach().to(torch.float64)
    return torch.equal(ref.decode(ref.encode(t64, fmt), fmt), t64)


@pytest.mark.parametrize("fmt,rounding,rbits", [("bf16", "sr", 4), ("e5m2", "sr", 8),
                                                ("fp16", "rn", None), ("e6m5", "rz", None)])
def test_updates_land_in_format(fmt, rounding, rbits):
    params = _params()
    opt = sim.LowPrecisionSGD(params, lr=0.1, momentum=0.9, fmt=fmt, rounding=rounding,
                              rbits=rbits, seed=3)
    for step in range(3):
        _set_grads(params, step)
        assert opt.step()
    f = ref.parse_format(fmt)
    for p in params:
        assert _in_format(p, f)
        assert _in_format(opt.param_state(p)["momentum_buffer"], f)
    assert not _in_format(_params()[0], f)  # the check can fail: raw values are not in fmt


def test_fp32_rn_matches_torch_sgd():
    a, b = _params(), _params()
    ours = sim.LowPrecisionSGD(a, lr=0.05, momentum=0.9, weight_decay=1e-3)
    theirs = torch.optim.SGD(b, lr=0.05, momentum=0.9, weight_decay=1e-3)
    for step in range(4):
        _set_grads(a, step)
        _set_grads(b, step)
        ours.step()
        theirs.step()
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_sr_is_seeded_and_unbiased_in_the_mean():
    def run(seed):
        params = _params()
        opt = sim.LowPrecisionSGD(params, lr=1.0, fmt="bf16", rounding="sr", rbits=12, seed=seed)
        _set_grads(params, 0)
        opt.step()
        return params[0].detach().clone()

    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the mean over seeds approaches the exact (float64) update, RN's error does not shrink
    p0 = _params()[0].detach().to(torch.float64)
    _set_grads([g := torch.nn.Parameter(torch.zeros(6, 5))], 0)
    exact = p0 - g.grad.to(torch.float64)
    mean = torch.stack([run(s).to(torch.float64) for s in range(40)]).mean(0)
    codes = ref.encode(exact, "bf16")
    ulp = ref.decode(codes + 1, "bf16") - ref.decode(codes, "bf16")
    assert float(((mean - exact).abs() / ulp.abs()).mean()) < 0.15


def test_dynamic_loss_scale_skips_nonfinite_and_unscales():
    params = _params()
    before = [p.detach().clone() for p in params]
    opt = sim.LowPrecisionSGD(params, lr=0.1, loss_scale=8.0, dynamic_loss_scale=True,
                              growth_interval=2)
    assert float(opt.scale_loss(torch.tensor(1.5))) == 12.0
    _set_grads(params, 0)
    params[0].grad[0, 0] = float("inf")
    assert opt.step() is False and opt.loss_scale == 4.0 and opt.skipped == 1
    assert all(torch.equal(p, q) for p, q in zip(params, before, strict=True))
    _set_grads(params, 1, scale=4.0)  # gradients of a loss scaled by 4
    assert opt.step()
    ref_params = _params()
    _set_grads(ref_params, 1)
    torch.optim.SGD(ref_params, lr=0.1).step()
    torch.testing.assert_close(params[0], ref_params[0])
    assert opt.step() and opt.loss_scale == 8.0  # grows after growth_interval good steps


def test_bad_options():
    with pytest.raises(ValueError, match="rbits"):
        sim.LowPrecisionSGD(_params(), lr=0.1, rounding="sr")
    with pytest.raises(ValueError, match="float32"):
        sim.LowPrecisionSGD(_params(), lr=0.1, fmt="e11m51")
    with pytest.raises(ValueError, match="learning rate"):
        sim.LowPrecisionSGD(_params(), lr=0)


# ---- LowPrecisionOptimizer: any torch.optim optimizer ---------------------------------------

def _bf16(t):
    return _in_format(t, ref.BF16)


def test_adam_with_sr_bf16_state_trains_the_mlp(data_dir, torch_one_thread):
    """The srmac train MLP on emulated MACs, Adam with weights and moments in bf16 (SR)."""
    import torch.nn.functional as F

    from sim.data import load_tensors
    from sim.models import build_model

    xtr, ytr, _, _ = load_tensors(data_dir)
    torch.manual_seed(0)
    model = sim.quantize_model(build_model("mlp", hidden=16), "e5m2:e6m5:sr_eager:4", seed=1)
    opt = sim.build_optimizer(model.parameters(), "adam", lr=1e-2, fmt="bf16", rounding="sr",
                              rbits=8, seed=2)
    losses, accs = [], []
    for _ in range(12):
        logits = model(xtr)
        loss = F.cross_entropy(logits, ytr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        accs.append(float((logits.argmax(1) == ytr).float().mean()))
    assert losses[-1] < 0.5 * losses[0] and accs[-1] >= 0.9, (losses, accs)
    for p in model.parameters():
        st = opt.param_state(p)
        assert _bf16(p) and _bf16(st["exp_avg"]) and _bf16(st["exp_avg_sq"])
        assert not _bf16(st["exp_avg_sq"] * 1.001)  # the check can fail


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fp32_rn_wrapper_is_the_torch_optimizer(name):
    a, b = _params(), _params()
    kw = dict(lr=0.05, weight_decay=1e-2)
    ours = sim.build_optimizer(a, name, momentum=0.9, **kw)
    theirs = sim.optim.OPTIMIZERS[name](b, **kw, **({"momentum": 0.9} if name == "sgd" else {}))
    for step in range(4):
        _set_grads(a, step)
        _set_grads(b, step)
        ours.step()
        theirs.step()
    for p, q in zip(a, b, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def _tiny_updates(**lowp):
    """bf16 weights 1.0, a constant gradient whose update is 1/8 ulp: 64 steps."""
    w = torch.nn.Parameter(torch.ones(256))
    opt = sim.LowPrecisionOptimizer(torch.optim.SGD([w], lr=2.0**-11), fmt="bf16", **lowp)
    for _ in range(64):
        w.grad = torch.ones(256)
        opt.step()
    return w.detach().to(torch.float64), opt


def test_kahan_sr_and_master_keep_updates_rn_loses():
    exact = 1 - 64 * 2.0**-11  # 0.96875, a bf16 value
    rn, _ = _tiny_updates()
    assert torch.equal(rn, torch.ones(256, dtype=torch.float64))  # every update is lost
    kahan, opt = _tiny_updates(kahan=True)
    assert torch.equal(kahan, torch.full((256,), exact, dtype=torch.float64))
    sr, _ = _tiny_updates(rounding="sr", rbits=8, seed=3)
    assert abs(float(sr.mean()) - exact) < 2e-3 and _bf16(sr)
    master, mopt = _tiny_updates(master=True)
    assert torch.equal(master, torch.full((256,), exact, dtype=torch.float64))
    assert mopt.work[0].dtype == torch.float32  # the fp32 master copy
    with pytest.raises(ValueError, match="choose one"):
        _tiny_updates(kahan=True, master=True)


def test_scheduler_and_state_dict_resume_the_same_bits():
    def make(params):
        opt = sim.build_optimizer(params, "adamw", lr=0.1, fmt="bf16", rounding="sr", rbits=6,
                                  seed=4, kahan=True)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, 10)

    a = _params()
    opt, sched = make(a)
    for step in range(3):
        _set_grads(a, step)
        opt.step()
        sched.step()
    assert opt.optimizer.param_groups[0]["lr"] < 0.1  # the scheduler drives the wrapped lr
    # a checkpoint (torch.optim's state_dict holds references to the live state tensors)
    saved, saved_sched = copy.deepcopy(opt.state_dict()), sched.state_dict()
    b = [p.detach().clone().requires_grad_() for p in a]
    opt2, sched2 = make(b)
    opt2.load_state_dict(saved)
    sched2.load_state_dict(saved_sched)
    for step in range(3, 5):
        for params, o, s in ((a, opt, sched), (b, opt2, sched2)):
            _set_grads(params, step)
            o.step()
            s.step()
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p, q)
