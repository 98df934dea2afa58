"""ResNet-20 and MobileNet-V2 for 32x32 inputs (sim.zoo, registered in sim.models): shapes,
sizes, converted end to end."""

import pytest
import torch
import torch.nn.functional as F

import sim
from sim.models import build_model, model_names

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_resnet20_is_the_cifar_resnet():
    m = build_model("resnet20", classes=10, in_ch=3)
    assert sum(p.numel() for p in m.parameters()) == 272_474  # 0.27 M (1x1-conv shortcuts)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    convs = [n for n, c in m.named_modules() if isinstance(c, torch.nn.Conv2d)]
    assert len(convs) == 19 + 2  # 19 3x3 convs of the 20 layers, 2 projection shortcuts
    mb = build_model("mobilenet-v2-cifar", classes=10, in_ch=3)
    assert mb(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert mb.features(torch.randn(1, 3, 32, 32)).shape[-1] == 4  # total stride 8, not 32
    with pytest.raises(ValueError, match="6n \\+ 2"):
        sim.zoo.ResNet20(depth=21)


def test_one_registry_has_the_cifar_models_for_both_data_sets():
    for name in ("resnet20", "mobilenet-v2-cifar"):
        assert name in model_names("fashion-mnist") and name in model_names("imagenet")
    m = build_model("resnet20")  # Fashion-MNIST by default: 1 channel, 10 classes
    assert m.conv1.in_channels == 1 and m.fc.out_features == 10
    assert not hasattr(sim.zoo, "build_zoo_model") and not hasattr(sim.zoo, "ZOO_MODELS")


@pytest.mark.parametrize("name", ["resnet20", "mobilenet-v2-cifar"])
def test_converts_end_to_end_and_fp32_mac_is_the_float_model(name):
    torch.manual_seed(0)
    model = build_model(name, classes=10, in_ch=3, width=0.25).eval()
    q = sim.quantize_model(model, "fp32:fp32:rn", outputs=("e4m3:rn", "e5m2:rn"), strict=True)
    report = q.srmac_report
    n_convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert len(report.emulated) == n_convs + 1 and report.leftovers == []
    if name == "mobilenet-v2-cifar":  # the depthwise convs are emulated as such
        dw = [m for _, m in sim.qlayers(q) if isinstance(m, sim.QConv2d) and m.groups > 1]
        assert len(dw) == 17 and all(m.groups == m.in_channels for m in dw)
    plain = sim.quantize_model(model, "fp32:fp32:rn", strict=True)
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(plain(x), model(x), rtol=1e-4, atol=1e-5)


def test_resnet20_trains_a_step_in_fp8():
    torch.manual_seed(1)
    q = sim.quantize_model(build_model("resnet20", classes=4, in_ch=3, width=0.25),
                           sim.fp8_config(), outputs=("e4m3:rn", "e5m2:rn"), seed=2, strict=True)
    opt = sim.LowPrecisionSGD(q.parameters(), lr=0.1, momentum=0.9, fmt="bf16", rounding="sr",
                              rbits=8)
    before = [p.detach().clone() for p in q.parameters()]
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    F.cross_entropy(q(x), y).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in q.parameters())
    opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, q.parameters(), strict=True))


def test_adaqat_runs_resnet20_on_padded_fashion_mnist(data_dir, tmp_path):
    import csv

    from ref.cli import main

    out = tmp_path / "a"
    assert main(["adaqat", "--model", "resnet20", "--width", "0.125", "--fixed", "4/4",
                 "--epochs", "1", "--limit-train", "16", "--limit-test", "8", "--batch-size", "16",
                 "--data-dir", str(data_dir), "--out", str(out), "--no-progress"]) == 0
    layers = list(csv.DictReader(open(out / "layers.csv")))
    assert len(layers) == 22  # 21 convs and the classifier, all quantized
    assert int(layers[0]["macs"]) == 32 * 32 * 9 * 2  # the stem sees 32x32 inputs (width 1/8: 2)
    assert layers[0]["w_bits"] == layers[-1]["w_bits"] == "8" and layers[1]["w_bits"] == "4"
