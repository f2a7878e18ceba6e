"""A ResNet for 48x48 faces: ResNet-18's basic blocks with a stride-1 3x3 stem.

ImageNet ResNets downsample 4x in the stem, which throws away most of a 48x48 face; here the
stem keeps full resolution and the stages halve it three times (48 -> 24 -> 12 -> 6).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from emolens.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = (
            nn.Identity() if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNetFer(nn.Module):
    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        dropout: float = 0.3,
        input_size: int = 48,  # accepted for a uniform interface; pooling makes it irrelevant
    ):
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError(f"widths has {len(widths)} stages but blocks has {len(blocks)}")
        self.stem = nn.Sequential(nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, stride=2 if (i > 0 and j == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, 48, 48) -> (B, num_classes)
        return self.head(self.layers(self.stem(x)))  # layers: (B, widths[-1], 6, 6)


@register_model
def resnet_fer(**kwargs) -> ResNetFer:
    """ResNet-18 layout, 11M parameters."""
    return ResNetFer(**kwargs)


@register_model
def resnet_fer_small(**kwargs) -> ResNetFer:
    """Half the width (2.8M parameters): for CPU training and fast inference."""
    kwargs.setdefault("widths", (32, 64, 128, 256))
    return ResNetFer(**kwargs)
