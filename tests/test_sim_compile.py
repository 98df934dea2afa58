"""torch.compile of a converted model: one graph, no break, the same bits as eager;
meta tensors and vmap through the custom operators."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import sim

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.dw = nn.Conv2d(4, 4, 3, padding="same", groups=4, padding_mode="reflect")
        self.scores = sim.MatMul()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        h = self.act(self.bn(self.conv(x)))
        h = self.dw(h)
        t = h.flatten(2)  # (N, 4, 36)
        h = h + self.scores(t, t.transpose(1, 2)).mean() * 0.01
        return self.fc(self.pool(h).flatten(1))


class Exact(nn.Module):
    """Only ops whose float results do not depend on compilation (no norms, no reductions,
    no tensor used twice: the sum of gradient contributions could be reordered): compiled
    and eager runs see the same GEMM inputs, so their bits must agree."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.dw = nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, padding_mode="reflect")
        self.kconv = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.scores = sim.MatMul()
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        h = self.dw(self.act(self.conv(x)))  # (N, 4, 3, 3)
        k = self.kconv(x)  # (N, 2, 3, 3)
        s = self.scores(h.flatten(2), k.flatten(2).transpose(1, 2))  # (N, 4, 2)
        return self.fc(s.flatten(1))


def _model(cls=Net):
    torch.manual_seed(0)
    cfg = sim.make_layer_config("e5m2:e6m5:sr_eager:4", grad="sr:4")
    return sim.quantize_model(cls(), cfg, seed=3, outputs=("e4m3:rn", "e5m2:sr:6"), strict=True)


def _step(fn, model, x, y):
    loss = F.cross_entropy(fn(x), y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_converted_model_has_no_graph_break():
    x = torch.randn(4, 1, 6, 6)
    explain = torch._dynamo.explain(_model())(x)
    assert explain.graph_break_count == 0, explain.break_reasons
    assert explain.graph_count == 1


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_training_step_is_eager_bits(backend):
    """torch.compile(quantize_model(model), fullgraph=True) trains a step with the eager bits."""
    torch._dynamo.reset()
    eager, model = _model(Exact), _model(Exact)
    x, y = torch.randn(4, 1, 6, 6), torch.tensor([0, 1, 2, 3])
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    opt = sim.LowPrecisionOptimizer(torch.optim.Adam(model.parameters(), lr=1e-2), fmt="bf16",
                                    rounding="sr", rbits=8)  # rounds the weights to bf16
    eager.load_state_dict(model.state_dict())
    for _ in range(2):  # the second step reuses the graph with the advanced seeds
        l_e, g_e = _step(eager, eager, x, y)
        l_c, g_c = _step(compiled, model, x, y)
        assert torch.equal(l_c, l_e)
        for name, g in g_e.items():
            assert torch.equal(g_c[name], g), name
        eager.zero_grad()
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            for p, q in zip(eager.parameters(), model.parameters(), strict=True):
                p.copy_(q)
    assert model.conv.step == 2 and eager.conv.step == 2


def test_compiled_model_with_norms_trains():
    model = _model()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    opt = sim.LowPrecisionSGD(model.parameters(), lr=0.1, momentum=0.9, fmt="bf16",
                              rounding="sr", rbits=8)
    x, y = torch.randn(8, 1, 6, 6), torch.arange(8) % 5
    losses = []
    for _ in range(4):
        loss = F.cross_entropy(compiled(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_compiled_eval_is_deterministic():
    model = _model(Exact).eval()
    compiled = torch.compile(copy.deepcopy(model), fullgraph=True, backend="aot_eager")
    x = torch.randn(3, 1, 6, 6)
    assert torch.equal(compiled(x), model(x))
    assert torch.equal(compiled(x), model(x))


def test_meta_device_and_vmap():
    meta = _model().to("meta")
    assert meta(torch.empty(2, 1, 6, 6, device="meta")).shape == (2, 5)
    mm = sim.QMatMul(config="e5m2:e6m5:sr_lazy:3").eval()
    a, b = torch.randn(3, 2, 4), torch.randn(4, 5)
    out = torch.func.vmap(mm, in_dims=(0, None))(a, b)
    assert torch.equal(out, torch.stack([mm(a[i], b) for i in range(3)]))
