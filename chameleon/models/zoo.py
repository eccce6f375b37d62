"""Plain-torch model zoo: the networks of the Chameleon paper, a BERT encoder and a small CNN.

No torchvision, no transformers and no downloads: every network is defined here with random
weights. Weights, normalisation statistics and the example input are drawn from a seeded
generator, so the same ``(name, batch, size, seed)`` always gives the same module and input, and
the caller's global torch RNG state is left untouched. The CNNs take NCHW float32 images (``size``
is the height and width); the BERT encoder takes int64 token ids (``size`` is the sequence length).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from chameleon.errors import UsageError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- ResNet-18
class _BasicBlock(nn.Module):
    def __init__(self, *, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]) as in torchvision."""

    def __init__(self, *, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages: list[nn.Module] = []
        inplanes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(
                nn.Sequential(
                    _BasicBlock(inplanes=inplanes, planes=planes, stride=stride),
                    _BasicBlock(inplanes=planes, planes=planes),
                )
            )
            inplanes = planes
        self.layers = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.layers(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


# --------------------------------------------------------------------------- VGG-16 / AlexNet
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


class VGG16(nn.Module):
    """VGG-16 (configuration D, no batch norm) as in torchvision."""

    def __init__(self, *, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class AlexNet(nn.Module):
    """AlexNet (single-tower variant) as in torchvision."""

    def __init__(self, *, num_classes: int = 1000) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


# --------------------------------------------------------------------------- MobileNet-V2
def _conv_bn_relu6(inp: int, out: int, *, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU6(inplace=True),
    )


class _InvertedResidual(nn.Module):
    def __init__(self, *, inp: int, out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inp * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(inp, hidden, kernel=1))
        layers += [
            _conv_bn_relu6(hidden, hidden, kernel=3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and inp == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_residual else y


class MobileNetV2(nn.Module):
    """MobileNet-V2 (width 1.0) as in torchvision."""

    # (expansion t, output channels c, repeats n, first stride s)
    _SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                 (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip

    def __init__(self, *, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, kernel=3, stride=2)]
        channels = 32
        for t, c, n, s in self._SETTINGS:
            for i in range(n):
                layers.append(_InvertedResidual(inp=channels, out=c, stride=s if i == 0 else 1, expand=t))
                channels = c
        layers.append(_conv_bn_relu6(channels, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


# --------------------------------------------------------------------------- BERT-mini
class _EncoderLayer(nn.Module):
    """A post-norm BERT encoder layer, attention written out with matmuls (no fused kernels, so
    ``torch.export`` gives the plain ops TVM's frontend imports: dense, batch matmul, softmax,
    layer norm, GELU)."""

    def __init__(self, *, hidden: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm1 = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, hidden = x.shape
        head_dim = hidden // self.heads
        q, k, v = (
            t.reshape(batch, seq, self.heads, head_dim).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1)
        )
        scores = torch.softmax(q @ k.transpose(-2, -1) / head_dim**0.5, dim=-1)
        context = (scores @ v).transpose(1, 2).reshape(batch, seq, hidden)
        x = self.norm1(x + self.out(context))
        return self.norm2(x + self.ffn(x))


class BertMini(nn.Module):
    """BERT-mini (4 layers, hidden 256, 4 heads, FFN 1024; Turc et al. 2019) with a
    sequence-classification head on the first token. Input: int64 token ids ``(batch, seq)``."""

    vocab = 30522
    max_positions = 512

    def __init__(self, *, hidden: int = 256, layers: int = 4, heads: int = 4, num_classes: int = 2) -> None:
        super().__init__()
        self.tokens = nn.Embedding(self.vocab, hidden)
        self.positions = nn.Embedding(self.max_positions, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.layers = nn.Sequential(
            *(_EncoderLayer(hidden=hidden, heads=heads, ffn=4 * hidden) for _ in range(layers))
        )
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.tokens(ids) + self.positions(positions))
        return self.classifier(torch.tanh(self.layers(x)[:, 0]))


# --------------------------------------------------------------------------- tiny CNN
class TinyCNN(nn.Module):
    """Two conv-bn-relu blocks, a max pool, global average pool and a linear layer.

    Small enough that importing, extracting tasks and compiling take a few seconds; used by
    end-to-end tests.
    """

    def __init__(self, *, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.fc(torch.flatten(x, 1))


# --------------------------------------------------------------------------- registry
NUM_CHANNELS = 3
"""The zoo's CNNs take NCHW float32 images with this many channels."""


def _images(batch: int, size: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(batch, NUM_CHANNELS, size, size, generator=gen)


def _token_ids(batch: int, size: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randint(0, BertMini.vocab, (batch, size), generator=gen)


@dataclass(frozen=True)
class _Spec:
    factory: Callable[[], nn.Module]
    """Builds the network with framework-default initialisation."""
    default_size: int
    """Input height and width (sequence length for token inputs) when the caller gives none."""
    min_size: int
    """Smallest size accepted (every layer keeps a non-empty output)."""
    max_size: int | None = None
    """Largest size accepted (a BERT's learned positions end there)."""
    example: Callable[[int, int, torch.Generator], torch.Tensor] = _images
    """``(batch, size, generator)`` -> the example input."""


_SPECS: dict[str, _Spec] = {
    "resnet18": _Spec(factory=ResNet18, default_size=224, min_size=32),
    "vgg16": _Spec(factory=VGG16, default_size=224, min_size=32),
    "alexnet": _Spec(factory=AlexNet, default_size=224, min_size=63),
    "mobilenet_v2": _Spec(factory=MobileNetV2, default_size=224, min_size=32),
    "bert_mini": _Spec(
        factory=BertMini, default_size=128, min_size=1, max_size=BertMini.max_positions, example=_token_ids
    ),
    "tiny_cnn": _Spec(factory=TinyCNN, default_size=32, min_size=4),
}

ZOO_NAMES: tuple[str, ...] = tuple(_SPECS)
"""Names accepted by :func:`build_model`."""


def canonical_name(name: str) -> str | None:
    """The zoo name ``name`` refers to (case and ``-``/``_`` insensitive), or None."""
    key = name.strip().lower().replace("-", "_")
    if key in _SPECS:
        return key
    squashed = key.replace("_", "")
    return next((n for n in ZOO_NAMES if n.replace("_", "") == squashed), None)


def _randomise(module: nn.Module, gen: torch.Generator) -> None:
    """torchvision-style weight init plus random (non-identity) batch-norm statistics."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                m.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=gen)
                if m.bias is not None:
                    m.bias.uniform_(-0.05, 0.05, generator=gen)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, (1.0 / m.in_features) ** 0.5, generator=gen)
                m.bias.uniform_(-0.05, 0.05, generator=gen)
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, 0.02, generator=gen)  # BERT's initializer_range
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.1, 0.1, generator=gen)
                m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
            elif isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.1, 0.1, generator=gen)


def build_model(
    name: str, *, batch: int = 1, image_size: int | None = None, seed: int = 0
) -> tuple[nn.Module, torch.Tensor]:
    """Build zoo network ``name`` in eval mode with random weights, and an example input.

    For the CNNs the input is float32 NCHW ``(batch, 3, image_size, image_size)``; ``image_size``
    defaults to 224 for the ImageNet networks and 32 for ``tiny_cnn``, and since the classifiers
    end in adaptive average pooling any size from the network's minimum upwards works. For
    ``bert_mini`` the input is int64 token ids ``(batch, image_size)``: ``image_size`` is the
    sequence length (default 128, at most 512).

    Raises:
        UsageError: unknown ``name``, or ``batch`` / ``image_size`` out of range.
    """
    key = canonical_name(name)
    if key is None:
        raise UsageError(f"unknown model {name!r}; valid names: {', '.join(ZOO_NAMES)}")
    spec = _SPECS[key]
    size = spec.default_size if image_size is None else image_size
    what = "sequence length" if spec.example is _token_ids else "image size"
    if batch < 1:
        raise UsageError(f"batch must be at least 1, got {batch}")
    if size < spec.min_size:
        raise UsageError(f"{what} {size} is too small for {key}; use at least {spec.min_size}")
    if spec.max_size is not None and size > spec.max_size:
        raise UsageError(f"{what} {size} is too large for {key}; use at most {spec.max_size}")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the factories' default init draws from the global RNG
        module = spec.factory()
    _randomise(module, gen)
    module.eval()
    example = spec.example(batch, size, gen)
    log.debug("built %s: batch %d, %s %d, seed %d", key, batch, what, size, seed)
    return module, example
