"""The example model zoo's architectures: the paper's Table 1 trio plus a PTB-XL-style multi-label CNN.

Every model takes model-ready input `(N, 12, T)` (layout NCT) and returns `(N, K)` raw outputs.
They use only operators both torch ONNX exporters write, so vendors' exports can be mimicked.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _conv(c_in: int, c_out: int, kernel: int, *, stride: int = 1, same: bool = False, separable: bool = False
          ) -> nn.Module:
    """A 1-D convolution; `same` uses padding="same" (stride 1 only), `separable` a depthwise+pointwise pair."""
    padding: int | str = "same" if same and stride == 1 else kernel // 2
    if separable:
        return nn.Sequential(
            nn.Conv1d(c_in, c_in, kernel, stride=stride, padding=padding, groups=c_in, bias=False),
            nn.Conv1d(c_in, c_out, 1, bias=False),
        )
    return nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)


class PlainCNN(nn.Module):
    """The paper's source model: four conv blocks (conv, batch-norm, ReLU, max-pool) and a linear head."""

    def __init__(self, n_leads: int = 12, n_classes: int = 5, *, same: bool = False, separable: bool = False,
                 sigmoid: bool = False, width: int = 32) -> None:
        super().__init__()
        chans = [n_leads, width, width * 2, width * 2, width * 4]
        blocks: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:])):
            blocks += [
                _conv(c_in, c_out, 7 if i < 2 else 5, same=same, separable=separable and i > 0),
                nn.BatchNorm1d(c_out),
                nn.ReLU(),
                nn.MaxPool1d(4 if i < 2 else 2),
            ]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(chans[-1], n_classes)
        self.sigmoid = sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x).mean(dim=2)
        out = self.head(z)
        return torch.sigmoid(out) if self.sigmoid else out


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 7, stride=stride, padding=3, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 7, padding=3, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.skip = (
            nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.skip(x))


class ResNet1d(nn.Module):
    """A 1-D ResNet: a strided stem and four residual stages."""

    def __init__(self, n_leads: int = 12, n_classes: int = 5, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(n_leads, width, 15, stride=2, padding=7, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        self.stages = nn.Sequential(
            _ResBlock(width, width, 1),
            _ResBlock(width, width * 2, 2),
            _ResBlock(width * 2, width * 2, 2),
            _ResBlock(width * 2, width * 4, 2),
        )
        self.head = nn.Linear(width * 4, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)).mean(dim=2))


class _EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer written out, so both exporters see plain MatMul/Softmax/GELU."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.norm2(x))


class ConvViT(nn.Module):
    """Convolutional embedding (local morphology) followed by a transformer encoder (global context)."""

    def __init__(self, n_leads: int = 12, n_classes: int = 5, dim: int = 64, depth: int = 2, heads: int = 4,
                 max_tokens: int = 512) -> None:
        super().__init__()
        self.embed = nn.Sequential(
            nn.Conv1d(n_leads, dim, 9, stride=4, padding=4),
            nn.GELU(),
            nn.Conv1d(dim, dim, 9, stride=5, padding=4),
            nn.GELU(),
        )
        self.pos = nn.Parameter(torch.zeros(1, max_tokens, dim))
        self.layers = nn.Sequential(*[_EncoderLayer(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).transpose(1, 2)
        tokens = tokens + self.pos[:, : tokens.shape[1]]
        return self.head(self.norm(self.layers(tokens)).mean(dim=1))
