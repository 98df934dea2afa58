"""sim.quantize_model: every layer type converted, each GEMM's bits recomputed with ref.matmul;
the report of what stayed float; unknown names; strict; patterns; output quantizers."""

import pytest
import sim_oracle as oracle
import torch
import torch.nn as nn

import ref
import sim

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class Mixed(nn.Module):
    """Conv, BN, grouped conv ('same', reflect), Conv1d, LayerNorm, attention (Linear,
    sim.MatMul, Softmax), pooling, a classifier: every layer type of the simulator."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.dw = nn.Conv2d(4, 4, 3, padding="same", groups=2, padding_mode="reflect")
        self.seq = nn.Conv1d(4, 8, 3, padding=1)
        self.ln = nn.LayerNorm(8)
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.scores = sim.MatMul()
        self.softmax = nn.Softmax(-1)
        self.mix = sim.MatMul()
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        h = self.dw(self.act(self.bn(self.conv(x))))  # (N, 4, 4, 4)
        t = self.seq(h.flatten(2))  # (N, 8, 16)
        t = self.ln(t.transpose(1, 2))  # (N, 16, 8) tokens
        att = self.softmax(self.scores(self.q(t), self.k(t).transpose(1, 2)) * 0.35)
        t = self.mix(att, self.v(t))
        return self.fc(self.pool(t.transpose(1, 2)).flatten(1))


CFG = sim.make_layer_config("e4m3:e6m5:sr_eager:3", bwd_input="e5m2:e6m5:sr_lazy:4",
                            bwd_weight="e5m2:fp16:sr_eager:2", grad="sr:4")


def test_every_layer_type_converts_and_each_gemm_is_ref_matmul():
    torch.manual_seed(0)
    model = sim.quantize_model(Mixed(), CFG, seed=7, outputs=("e4m3:rn", "e5m2:rn"), strict=True)
    report = model.srmac_report
    emulated = {r.layer: r.type for r in report.emulated}
    assert emulated == {"conv": "Conv2d", "dw": "Conv2d", "seq": "Conv1d", "q": "Linear",
                        "k": "Linear", "v": "Linear", "scores": "MatMul", "mix": "MatMul",
                        "fc": "Linear"}
    quantized = {r.layer for r in report.rows if r.status == "quantized output"}
    assert quantized == {"bn", "act", "ln", "softmax", "pool"}
    assert isinstance(model.bn, nn.BatchNorm2d) and type(model.bn).__name__ == "QBatchNorm2d"
    ids = [m.layer_id for _, m in sim.qlayers(model)]
    assert ids == list(range(9))
    # capture every emulated layer's inputs, output and gradients
    seen = {}

    def fwd_hook(name):
        def hook(mod, inputs, out):
            seen[name] = {"in": [t.detach() for t in inputs], "out": out.detach()}
            out.register_hook(lambda g: seen[name].__setitem__("g", g.detach()))
        return hook

    def bwd_hook(name):
        def hook(mod, grad_in, grad_out):
            seen[name]["gin"] = [None if t is None else t.detach() for t in grad_in]
        return hook

    for name, m in sim.qlayers(model):
        m.register_forward_hook(fwd_hook(name))
        m.register_full_backward_hook(bwd_hook(name))
    x = torch.randn(2, 2, 4, 4, requires_grad=True)
    model(x).logsumexp(1).sum().backward()
    checked = 0
    for name, m in sim.qlayers(model):
        s, c = seen[name], m.config
        if isinstance(m, sim.QMatMul):
            want = oracle.matmul(m, *s["in"], s["g"])
            got = {"fwd": s["out"], "da": s["gin"][0], "db": s["gin"][1]}
            fmts = {"fwd": c.fwd.acc_fmt, "da": c.bwd_input.acc_fmt, "db": c.bwd_weight.acc_fmt}
        else:
            xin, g = s["in"][0], s["g"]
            if isinstance(m, sim.QLinear):
                want = oracle.linear(m, xin, g)
                got = {"fwd": s["out"].reshape(-1, s["out"].shape[-1])}
            elif isinstance(m, sim.QConv1d):
                want = oracle.conv1d(m, xin, g, (1, 1))
                got = {"fwd": s["out"].permute(0, 2, 1).reshape(-1, s["out"].shape[1])}
            else:
                want = oracle.conv2d(m, xin, g, (1, 1, 1, 1))
                got = {"fwd": s["out"].permute(0, 2, 3, 1).reshape(-1, s["out"].shape[1])}
            got.update(dW=m.weight.grad, db=m.bias.grad)
            if "dx" in want and s["gin"][0] is not None:
                got["dx"] = s["gin"][0].reshape(want["dx"].shape)
            fmts = {"fwd": c.fwd.acc_fmt, "dx": c.bwd_input.acc_fmt, "dW": c.bwd_weight.acc_fmt,
                    "db": c.bwd_weight.acc_fmt}
        for key, value in got.items():
            assert torch.equal(oracle.codes(value, fmts[key]), want[key]), (name, key)
            checked += 1
    # 4 Linear x (fwd, dx, dW, db) + conv and Conv1d x 4 + depthwise (fwd, dW, db: its dx
    # with reflect padding folds the border in float) + 2 MatMul x (fwd, da, db)
    assert checked == 4 * 4 + 2 * 4 + 3 + 2 * 3


def test_report_lists_what_stays_float():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.up = nn.ConvTranspose2d(2, 2, 2)
            self.fc = nn.Linear(8, 4)
            self.act = nn.GELU()

        def forward(self, x):
            h, _ = self.attn(x, x, x)
            h = torch.matmul(h, h.transpose(1, 2)) @ h  # functional GEMMs
            return torch.relu(self.act(self.fc(h)))

    with pytest.warns(UserWarning, match="GEMM"):
        q = sim.quantize_model(Net(), "e5m2:e6m5:rn")
    rows = {r.layer: r for r in q.srmac_report.float_rows}
    assert "F.multi_head_attention_forward" in rows["attn"].detail
    assert "transposed" in rows["up"].detail
    calls = [r for r in q.srmac_report.float_rows if r.layer.startswith("(call")]
    assert sorted(r.type for r in calls) == ["@", "torch.matmul"]  # torch.relu: no outputs asked
    assert isinstance(q.fc, sim.QLinear) and not isinstance(q.attn.out_proj, sim.QLinear)
    table = str(q.srmac_report)
    assert "| layer | type | reason |" in table and "attn" in table
    with pytest.raises(ValueError, match="stayed float"):
        sim.quantize_model(Net(), "e5m2:e6m5:rn", strict=True)
    # with output quantizers asked for, functional activations are reported too
    with pytest.warns(UserWarning):
        q = sim.quantize_model(Net(), "e5m2:e6m5:rn", outputs="e4m3:rn")
    types = {r.type for r in q.srmac_report.float_rows}
    assert "torch.relu" in types and type(q.act).__name__ == "QGELU"


def test_config_dict_names_patterns_and_errors():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match=r"'3'.*emulatable layers: '0', '2.0', '2.1'"):
        sim.quantize_model(model, {"3": "e5m2:e6m5:rn", "*": "fp32:fp32:rn"})
    with pytest.raises(ValueError, match="'2.*.x'"):
        sim.quantize_model(model, {"2.*.x": "e5m2:e6m5:rn"})
    q = sim.quantize_model(model, {"2.*": "e5m2:e6m5:rn", "0": None})
    assert isinstance(q[2][0], sim.QLinear) and q[2][1].config.fwd.spec() == "e5m2:e6m5:rn"
    assert not isinstance(q[0], sim.QLinear)
    assert [r.detail for r in q.srmac_report.float_rows if r.layer == "0"] == [
        "the config dict maps it to None"]
    assert q.srmac_report.leftovers == []  # excluded on purpose: strict accepts it
    sim.quantize_model(model, {"2.*": "e5m2:e6m5:rn", "0": None}, strict=True)
    # missing names without '*' stay float (reported); set_config insists on a config
    q = sim.quantize_model(model, {"0": "e5m2:e6m5:rn"})
    assert [r.layer for r in q.srmac_report.float_rows if r.gemm] == ["2.0", "2.1"]
    assert [r.detail for r in q.srmac_report.float_rows if not r.gemm] == [
        "activation: float32 arithmetic"]
    with pytest.raises(ValueError, match="no configuration for layer '0'"):
        sim.set_config(q, {})
    with pytest.raises(ValueError, match="unknown output kind"):
        sim.quantize_model(model, "e5m2:e6m5:rn", outputs={"relu": "e4m3:rn"})


def test_output_quantizers_round_forward_and_backward():
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 2))
    q = sim.quantize_model(model, "fp32:fp32:rn", outputs={"activation": ("e4m3:rn", "e5m2:rn")})
    x = torch.randn(3, 5)
    h = q[1](q[0](x))
    assert torch.equal(h, ref.quantize(torch.relu(q[0](x)), "e4m3"))
    assert not torch.equal(h, torch.relu(q[0](x)))  # the check can fail
    seen = {}
    q[1].register_full_backward_hook(lambda m, gi, go: seen.update(gi=gi[0]))
    q(x).sum().backward()
    gin = seen["gi"]
    assert torch.equal(gin, ref.quantize(gin, "e5m2"))  # the gradient was rounded to E5M2
