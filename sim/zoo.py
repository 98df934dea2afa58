"""Image model classes (no torchvision): ResNet-18 and MobileNet-V2 (ImageNet-shaped),
ResNet-20 and MobileNet-V2 with ``small_input`` for 32x32 images (CIFAR-shaped).

They are registered, with every other model, in :mod:`sim.models` (``resnet18``,
``mobilenet-v2``, ``resnet20``, ``mobilenet-v2-cifar``).

Compact definitions written for this project, in plain torch: every
activation and pooling is a module, so :func:`sim.quantize_model` converts
them end to end (every conv, depthwise ones included, and the classifier on
the emulated MAC; output quantizers on the norms, activations and pooling).
The ImageNet models' parameter names follow the layout of torchvision's
``resnet18`` and ``mobilenet_v2`` (``conv1``, ``layer1.0.downsample.0``,
``fc``; ``features.N.conv.M``, ``classifier.1``), so a float state dict saved
from those models is meant to load with ``srmac adaqat --init`` (not tested
here: torchvision is not installed).

Quantization contract (see :func:`sim.adaqat.qat_model`): every Linear/Conv2d
except the first reads a non-negative input (after ReLU / ReLU6) unless it is
marked with ``srmac_signed_input = True``; MobileNet-V2's linear bottlenecks
make the expansion 1x1 convs and the last 1x1 conv read signed inputs.
"""

from __future__ import annotations

import torch.nn as nn

from .adaqat import SIGNED_INPUT

__all__ = ["BasicBlock", "ResNet18", "ResNet20", "MobileNetV2"]


def _ch(c: float, divisor: int = 8) -> int:
    """Channel count ``c`` rounded to a multiple of ``divisor``, never below 90 % of ``c``."""
    v = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return v + divisor if v < 0.9 * c else v


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN; 1x1 conv + BN shortcut (``downsample``) when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()  # modules: they can carry quantizers

    def forward(self, x):  # x >= 0 (post-ReLU)
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """ResNet-18: 7x7/2 stem + 3x3/2 max-pool, 4 stages of 2 basic blocks, average pool, fc.

    ``width`` scales the stage widths 64, 128, 256, 512 (1.0 = the standard net,
    11.7 M parameters with 1000 classes). Any input size >= 32 works.
    """

    def __init__(self, classes: int = 1000, in_ch: int = 3, width: float = 1.0):
        super().__init__()
        w = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_ch, w[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = w[0]
        for i, c in enumerate(w):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, c, stride),
                                                         BasicBlock(c, c, 1)))
            cin = c
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


class ResNet20(nn.Module):
    """ResNet-20 for 32x32 images (He et al. 2016, section 4.2): 3x3 conv, 3 stages of
    ``n`` = 3 basic blocks (16, 32, 64 channels, strides 1, 2, 2), average pool, fc.

    ``depth`` = 6n + 2 (20, 32, 44, 56, 110); ``width`` scales the channels. The
    shortcut where the shape changes is a 1x1 conv + BN (the paper's option B;
    0.27 M parameters at depth 20 with 10 classes).
    """

    def __init__(self, classes: int = 10, in_ch: int = 3, width: float = 1.0, depth: int = 20):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n + 2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        w = [max(1, round(c * width)) for c in (16, 32, 64)]
        self.conv1 = nn.Conv2d(in_ch, w[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        self.relu = nn.ReLU()
        cin = w[0]
        for i, c in enumerate(w):
            blocks = [BasicBlock(cin, c, 1 if i == 0 else 2)] + [BasicBlock(c, c, 1)
                                                                 for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = c
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def _conv_bn_relu6(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
                   signed_input: bool = False) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)
    setattr(conv, SIGNED_INPUT, signed_input)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU6())


class InvertedResidual(nn.Module):
    """Expand 1x1 (ratio ``t``, skipped for t = 1), depthwise 3x3, linear 1x1 projection + BN.

    The output is linear (no activation): the next block's expansion conv reads
    a signed input. Residual add when stride 1 and ``cin == cout``.
    """

    def __init__(self, cin: int, cout: int, stride: int, t: int, signed_input: bool):
        super().__init__()
        hidden = cin * t
        layers = []
        if t != 1:
            layers.append(_conv_bn_relu6(cin, hidden, 1, signed_input=signed_input))
        layers.append(_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden,
                                     signed_input=signed_input and t == 1))
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """MobileNet-V2 (Sandler et al. 2018): 3x3/2 stem, 17 inverted residual blocks, 1x1 to 1280.

    ``width`` scales the channels (rounded to multiples of 8; 1.0 = the standard
    net, 3.5 M parameters with 1000 classes). Classifier: dropout 0.2 + linear.
    ``small_input``: for 32x32 images, the stem and the second stage keep stride
    1 (total stride 8 instead of 32), as CIFAR versions of the net do.
    """

    #: (expansion t, output channels c, repeats n, first stride s)
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, classes: int = 1000, in_ch: int = 3, width: float = 1.0,
                 small_input: bool = False):
        super().__init__()
        cin = _ch(32 * width)
        last = _ch(1280 * max(1.0, width))
        feats = [_conv_bn_relu6(in_ch, cin, 3, 1 if small_input else 2)]
        signed = False  # the stem's output is post-ReLU6
        for k, (t, c, n, s) in enumerate(self.SETTINGS):
            s = 1 if small_input and k == 1 else s
            cout = _ch(c * width)
            for i in range(n):
                feats.append(InvertedResidual(cin, cout, s if i == 0 else 1, t, signed))
                cin, signed = cout, True
        feats.append(_conv_bn_relu6(cin, last, 1, signed_input=True))
        self.features = nn.Sequential(*feats)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(self.avgpool(x).flatten(1))
