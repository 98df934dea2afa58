"""On CUDA, the emulated layers give the same codes as on the CPU (skipped without a GPU)."""

import pytest
import torch

import ref
import sim

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("mac", ["e5m2:e6m5:sr_eager:4", "e4m3:e6m5:sr_lazy:3"])
def test_cuda_layers_match_cpu_codes(mac):
    cfg = ref.parse_mac(mac)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1, stride=2), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(3 * 3 * 3, 4))
    x = torch.randn(5, 2, 6, 6)
    outs = {}
    for dev in ("cpu", "cuda"):
        m = sim.quantize_model(model, sim.make_layer_config(mac, grad="sr:5"), seed=2).to(dev)
        xd = x.detach().clone().to(dev).requires_grad_()
        y = m(xd)
        y.backward(torch.ones_like(y) * 0.25)
        outs[dev] = [t.detach().cpu().to(torch.float64) for t in
                     (y, xd.grad, m[0].weight.grad, m[0].bias.grad, m[3].weight.grad)]
    for a, b in zip(outs["cpu"], outs["cuda"], strict=True):
        assert torch.equal(ref.encode(a, cfg.acc_fmt), ref.encode(b, cfg.acc_fmt))


def test_cuda_grouped_conv_matmul_and_quantizers_match_cpu_codes():
    """On CUDA, grouped convs and batched matmuls run their short chains side by side
    (sim.gemm.bgemm_codes): the codes must still be the CPU's (per-group ref.matmul)."""
    mac = "e5m2:e6m5:sr_eager:4"
    cfg = ref.parse_mac(mac)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
            self.act = torch.nn.ReLU()
            self.dw = torch.nn.Conv2d(4, 4, 3, padding="same", groups=4, padding_mode="reflect")
            self.seq = torch.nn.Conv1d(4, 4, 3, padding=1, groups=2)
            self.mm = sim.MatMul()
            self.fc = torch.nn.Linear(16, 3)

        def forward(self, x):
            t = self.seq(self.dw(self.act(self.conv(x))).flatten(2))  # (N, 4, 16)
            return self.fc(self.mm(t, t.transpose(1, 2)).flatten(1))

    torch.manual_seed(0)
    model = Net()
    x = torch.randn(3, 2, 4, 4)
    outs = {}
    for dev in ("cpu", "cuda"):
        m = sim.quantize_model(model, sim.make_layer_config(mac, grad="sr:5"), seed=2,
                               outputs={"activation": ("e4m3:sr:4", "e5m2:sr:4")}).to(dev)
        xd = x.detach().clone().to(dev).requires_grad_()
        y = m(xd)
        y.backward(torch.ones_like(y) * 0.25)
        outs[dev] = [t.detach().cpu().to(torch.float64) for t in
                     (y, xd.grad, m.dw.weight.grad, m.seq.weight.grad, m.conv.weight.grad)]
    for a, b in zip(outs["cpu"], outs["cuda"], strict=True):
        assert torch.equal(ref.encode(a, cfg.acc_fmt), ref.encode(b, cfg.acc_fmt))
