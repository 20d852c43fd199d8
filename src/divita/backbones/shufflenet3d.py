"""3D ShuffleNetV2 (Köpüklü et al., "Resource Efficient 3D Convolutional Neural Networks", 2019).

A re-implementation of the architecture of the authors' Efficient-3DCNNs release (``models/shufflenetv2.py``)
whose module names follow that release, so that its published checkpoints (e.g.
``kinetics_shufflenetv2_1.0x_RGB_16_best.pth``, a ``{"state_dict": ...}`` dict saved from an
``nn.DataParallel`` model, hence ``module.`` prefixes) load key for key once the prefix is stripped:

- ``conv1``: 3×3×3 convolution, stride (1, 2, 2), batch norm, ReLU; then a 3×3×3 max pool with stride 2
  in time and space;
- ``features``: 4 + 8 + 4 shuffle units (``banch1`` is the down-sampling branch of a stage's first unit,
  ``banch2`` the main branch; the spelling is the release's), each followed by a 2-group channel shuffle;
- ``conv_last``: 1×1×1 convolution to 1024 channels (2048 for width 2.0), batch norm, ReLU;
- global average pooling over time and space, then ``classifier`` (dropout, linear).

For a 16×112×112 clip the feature map before pooling is 1×4×4; the clip feature is the pooled
``conv_last`` activation (1024-d at width 1.0). Registered as backbone ``shufflenet3d``: no downloadable
weights, ``--weights PATH`` to the release's checkpoint; inputs 0..255 minus the ActivityNet mean, as trained.
"""

from __future__ import annotations

import torch
from torch import nn

# Output channels of conv1, the three stages and conv_last, per width multiplier (as in the paper, Table 1).
STAGE_CHANNELS: dict[float, tuple[int, int, int, int, int]] = {
    0.25: (24, 32, 64, 128, 1024),
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 224, 488, 976, 2048),
}
STAGE_UNITS = (4, 8, 4)


def _conv_bn(cin: int, cout: int, kernel: int, stride=1, groups: int = 1, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv3d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm3d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal groups: (N, g·c, ...) -> (N, c·g, ...)."""
    n, c = x.shape[:2]
    rest = x.shape[2:]
    return x.reshape(n, groups, c // groups, *rest).transpose(1, 2).reshape(n, c, *rest)


class ShuffleUnit3d(nn.Module):
    """One ShuffleNetV2 unit in 3D.

    stride 1: split the channels in halves, transform the second half (1×1×1 conv, depthwise 3×3×3 conv,
    1×1×1 conv) and concatenate it to the untouched first half. stride 2: both branches see the whole input;
    ``banch1`` is a depthwise strided conv then a 1×1×1 conv, ``banch2`` as above with a strided depthwise conv.
    """

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, not {stride}")
        self.stride = stride
        half = cout // 2
        branch_in = half if stride == 1 else cin
        if stride == 2:
            self.banch1 = nn.Sequential(
                *_conv_bn(cin, cin, 3, stride=2, groups=cin, relu=False),
                *_conv_bn(cin, half, 1),
            )
        self.banch2 = nn.Sequential(
            *_conv_bn(branch_in, half, 1),
            *_conv_bn(half, half, 3, stride=stride, groups=half, relu=False),
            *_conv_bn(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            keep, transform = x.chunk(2, dim=1)
            out = torch.cat((keep, self.banch2(transform)), dim=1)
        else:
            out = torch.cat((self.banch1(x), self.banch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2_3D(nn.Module):
    """3D ShuffleNetV2; ``num_classes=0`` leaves out the classifier (``forward`` then returns features)."""

    def __init__(self, num_classes: int = 600, width_mult: float = 1.0, dropout: float = 0.2):
        super().__init__()
        if width_mult not in STAGE_CHANNELS:
            raise ValueError(f"width_mult must be one of {sorted(STAGE_CHANNELS)}, not {width_mult}")
        c0, *stage_out, c_last = STAGE_CHANNELS[width_mult]
        self.conv1 = nn.Sequential(*_conv_bn(3, c0, 3, stride=(1, 2, 2)))
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        units: list[nn.Module] = []
        cin = c0
        for n_units, cout in zip(STAGE_UNITS, stage_out):
            for i in range(n_units):
                units.append(ShuffleUnit3d(cin, cout, stride=2 if i == 0 else 1))
                cin = cout
        self.features = nn.Sequential(*units)
        self.conv_last = nn.Sequential(*_conv_bn(cin, c_last, 1))
        self.num_features = c_last
        self.classifier: nn.Module = (
            nn.Sequential(nn.Dropout(dropout), nn.Linear(c_last, num_classes)) if num_classes else nn.Identity()
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) normalised clips -> (N, num_features) pooled ``conv_last`` activations."""
        x = self.conv_last(self.features(self.maxpool(self.conv1(x))))
        return x.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


def build_shufflenet3d() -> nn.Module:
    return ShuffleNetV2_3D(num_classes=0, width_mult=1.0)
