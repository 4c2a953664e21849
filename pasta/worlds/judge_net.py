"""The network both worlds' judges share: stages of two 3x3 convolutions with BatchNorm and ReLU, each halving the
side by max pooling, then one fully connected layer on the flattened map (which keeps where things are: size,
position, left and right). Deliberately unlike the contrastive image encoder, so that a judge cannot be pleased by
what pleases the encoder."""

from __future__ import annotations

from torch import nn


def judge_body(channels: tuple[int, ...], image_size: int, hidden: int, dropout: float) -> tuple[nn.Module, nn.Module]:
    """(features, trunk): [N,3,S,S] -> [N, C, S/2^k, S/2^k] -> [N, hidden]."""
    layers: list[nn.Module] = []
    c_in = 3
    for c_out in channels:
        for k in range(2):
            layers += [
                nn.Conv2d(c_in if k == 0 else c_out, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.MaxPool2d(2))
        c_in = c_out
    side = image_size // 2 ** len(channels)
    trunk = nn.Sequential(
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(c_in * side * side, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
    )
    return nn.Sequential(*layers), trunk
