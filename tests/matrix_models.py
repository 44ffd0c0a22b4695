"""Tiny versions of the architectures real ECG models use, for the export matrix and the vendor-shaped model.

A plain helper module (not a test file). Every model takes `(N, 12, T)` and returns `(N, 5)` logits;
`VendorNet` also takes `(N, 6)` demographics and z-scores each lead itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SeparableBlock(nn.Module):
    """Depthwise + pointwise conv, padding="same", batch norm, residual."""

    def __init__(self, width: int, kernel: int = 7) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(width, width, kernel, padding="same", groups=width, bias=False)
        self.pointwise = nn.Conv1d(width, width, 1, bias=False)
        self.norm = nn.BatchNorm1d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.norm(self.pointwise(self.depthwise(x))))


class SeparableResNet(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv1d(12, width, 7, padding="same")
        self.blocks = nn.Sequential(SeparableBlock(width), nn.MaxPool1d(2), SeparableBlock(width))
        self.head = nn.Linear(width, 5)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(F.relu(self.stem(x))).mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Conv1dSame(nn.Conv1d):
    """TensorFlow-style "same" padding at any stride (as timm's Conv2dSame): pads from the input length."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size, k, s, d = x.shape[-1], self.kernel_size[0], self.stride[0], self.dilation[0]
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        return super().forward(F.pad(x, (total // 2, total - total // 2)))


class StridedSame(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.convs = nn.Sequential(Conv1dSame(12, width, 8, stride=2), nn.ReLU(), Conv1dSame(width, width, 5, stride=3),
                                   nn.ReLU())
        self.head = nn.Linear(width, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(x).mean(dim=2))


class SqueezeExcite(nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv1d(12, width, 7, stride=2, padding=3)
        self.squeeze = nn.Sequential(nn.Linear(width, 4), nn.ReLU(), nn.Linear(4, width), nn.Sigmoid())
        self.head = nn.Linear(width, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv(x))
        h = h * self.squeeze(F.adaptive_avg_pool1d(h, 1).squeeze(-1)).unsqueeze(-1)
        return self.head(h.mean(dim=2))


class RecurrentHead(nn.Module):
    def __init__(self, cell: str, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv1d(12, width, 10, stride=10)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(width, width, batch_first=True, bidirectional=cell == "gru")
        self.head = nn.Linear(width * (2 if cell == "gru" else 1), 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(F.relu(self.stem(x)).transpose(1, 2))
        return self.head(out[:, -1])


class Attention(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv1d(12, width, 10, stride=10)
        self.attention = nn.MultiheadAttention(width, 2, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x).transpose(1, 2)
        attended, _ = self.attention(h, h, h, need_weights=False)
        return self.head(self.norm(h + attended).mean(dim=1))


class NormVariants(nn.Module):
    """Batch, group, instance and layer norm in one stack."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(12, width, 7, stride=2)
        self.batch = nn.BatchNorm1d(width)
        self.conv2 = nn.Conv1d(width, width, 5, stride=2)
        self.group = nn.GroupNorm(2, width)
        self.instance = nn.InstanceNorm1d(width, affine=True)
        self.layer = nn.LayerNorm(width)
        self.head = nn.Linear(width, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.batch(self.conv1(x)))
        h = F.relu(self.instance(self.group(self.conv2(h))))
        return self.head(self.layer(h.transpose(1, 2)).mean(dim=1))


ARCHITECTURES = {
    "sep-resnet-same": SeparableResNet,
    "strided-same": StridedSame,
    "squeeze-excite": SqueezeExcite,
    "lstm-head": lambda: RecurrentHead("lstm"),
    "gru-head": lambda: RecurrentHead("gru"),
    "attention": Attention,
    "norm-variants": NormVariants,
}


class VendorNet(nn.Module):
    """Shaped like a PTB-XL vendor model: per-lead z-score inside, a separable ResNet, demographics
    (six features) joined before a multi-label head of five logits."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = SeparableResNet(width)
        self.demographics = nn.Linear(6, 4)
        self.head = nn.Linear(width + 4, 5)

    def forward(self, ecg: torch.Tensor, demographics: torch.Tensor) -> torch.Tensor:
        mean = ecg.mean(dim=2, keepdim=True)
        std = ecg.std(dim=2, keepdim=True)
        z = (ecg - mean) / (std + 1e-6)
        joined = torch.cat([self.body.features(z), F.relu(self.demographics(demographics))], dim=1)
        return self.head(joined)


class VendorNetOutside(VendorNet):
    """VendorNet trained behind a z-score the vendor runs *outside* the graph (issue 23): the ONNX file takes the
    already normalised signal, and only the card can say so."""

    def forward(self, ecg: torch.Tensor, demographics: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([self.body.features(ecg), F.relu(self.demographics(demographics))], dim=1)
        return self.head(joined)


def randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics, so folded batch norms change the weights."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return model.eval()
