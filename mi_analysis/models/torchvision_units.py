"""torchvision classification models as a list of units in forward order (docs/models.md).

`torchvision_units(NAME, ...)` builds torchvision.models.get_model(NAME) without weights, with the
data set's number of classes, adapts its first layer to the data set (channels, small images) and
splits it by the rule of its family into units, whose chain followed by the head computes exactly
the (adapted) torchvision model's forward:

- resnet (resnet*, resnext*, wide_resnet*): the stem (conv1, bn1, relu, maxpool), then every block
  of layer1..layer4; head: avgpool, flatten, fc.
- vgg: one unit per conv layer, with the BatchNorm, ReLU and max pool that follow it; head:
  avgpool, flatten, classifier.
- mobilenet_v2, mobilenet_v3, efficientnet, convnext, swin: every entry of `features`, except that
  a stage (a plain Sequential of blocks of one class) gives one unit per block; head: average
  pool, flatten, classifier (convnext: avgpool and classifier; swin: norm, average pool, head).
  Swin computes channels-last; its units take and return (B, C, H, W), like every other image
  unit here, by permuting around each entry.
- vit: the embedding (patchify conv, class token, position embedding), then every encoder layer;
  head: the final LayerNorm, the class token, heads. Its units output tokens (T, C).

Adaptations, listed by `adapted` (and `LocalNet.describe()`):
- in_channels other than 3: the first conv is a fresh one taking in_channels (initialised as the
  family initialises its convs);
- images smaller than SMALL_INPUT pixels get the stem of the usual CIFAR variants: resnet 3x3
  conv with stride 1 and no max pool; mobilenet/efficientnet first conv with stride 1; convnext
  and swin a 2x2 patchify stem with stride 2 (was 4x4 stride 4); vgg a global average pool and
  Linear(512 -> classes) head (was a 7x7 pool and three Linear layers) and no more max pools
  than the image side allows (log2 of it);
- vit is built for the image size (its position embedding); the side must be a multiple of the
  patch size.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import OrderedDict
from typing import Callable

import torch
from torch import Tensor, nn

SMALL_INPUT = 64  # image sides below this get the family's CIFAR-style stem

# torchvision module of a model's builder -> family
_FAMILY_OF_MODULE = {
    "resnet": "resnet", "vgg": "vgg", "mobilenetv2": "mobilenet", "mobilenetv3": "mobilenet",
    "efficientnet": "mobilenet", "convnext": "convnext", "swin_transformer": "swin",
    "vision_transformer": "vit",
}

UNIT_RULES = {
    "resnet": "stem (conv1, bn1, relu, maxpool), then every block of layer1..layer4; head: avgpool, flatten, fc",
    "vgg": "one unit per conv layer with the BatchNorm, ReLU and max pool after it; head: avgpool, flatten, "
           "classifier",
    "mobilenet": "every entry of features, a stage (Sequential of blocks) one unit per block; head: average "
                 "pool, flatten, classifier",
    "convnext": "stem, then every block of each stage and every downsampling layer; head: avgpool, classifier",
    "swin": "stem, then every block of each stage and every patch merging (each permuted to take and give "
            "(C, H, W)); head: norm, average pool, flatten, head",
    "vit": "embedding (patchify conv, class token, position embedding), then every encoder layer; head: "
           "final LayerNorm, class token, heads",
}


@dataclasses.dataclass
class TorchvisionSplit:
    """A torchvision model split into units. `model` is the adapted torchvision model itself; its
    forward equals head(units in order (x)), and it shares every parameter with units and head."""

    model: nn.Module
    units: OrderedDict[str, nn.Module]
    head: nn.Module
    family: str
    rule: str
    adapted: tuple[str, ...]


def torchvision_family(name: str) -> str:
    """The split family of a torchvision model name, or a ValueError for models without a rule."""
    import torchvision

    module = torchvision.models.get_model_builder(name).__module__.rsplit(".", 1)[-1]
    if module not in _FAMILY_OF_MODULE:
        raise ValueError(f"arch='torchvision:{name}': torchvision's {module} models have no split rule into "
                         f"units; families with one: resnet, resnext, wide_resnet, vgg, mobilenet_v2, "
                         f"mobilenet_v3, efficientnet, convnext, swin, vit")
    return _FAMILY_OF_MODULE[module]


def torchvision_units(name: str, *, num_classes: int, in_channels: int, image_size: int) -> TorchvisionSplit:
    """torchvision's NAME for num_classes classes and (in_channels, image_size, image_size) inputs,
    adapted and split by its family's rule (module docstring)."""
    import torchvision

    family = torchvision_family(name)
    options = {}
    if family == "vit":
        patch = int(re.search(r"_(\d+)$", name).group(1))
        if image_size % patch:
            raise ValueError(f"arch='torchvision:{name}' takes square images whose side is a multiple of its "
                             f"patch size {patch}; got image_size={image_size}")
        options["image_size"] = image_size
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **options)
    units, head, adapted = _SPLITTERS[family](model, in_channels, image_size, num_classes)
    return TorchvisionSplit(model, units, head, family, UNIT_RULES[family], tuple(adapted))


# ---------------------------------------------------------------- fresh first layers
def _kaiming(conv: nn.Conv2d) -> None:  # resnet, vgg, mobilenet, efficientnet
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")


def _truncated(conv: nn.Conv2d) -> None:  # convnext, swin
    nn.init.trunc_normal_(conv.weight, std=0.02)


def _patchify(conv: nn.Conv2d) -> None:  # vit
    nn.init.trunc_normal_(conv.weight, std=math.sqrt(1 / (conv.in_channels * math.prod(conv.kernel_size))))


def _fresh_conv(conv: nn.Conv2d, in_channels: int, init: Callable[[nn.Conv2d], None], **changes) -> nn.Conv2d:
    """A new conv like `conv` (kernel, stride, padding, bias, output channels) taking in_channels,
    with `changes` applied, initialised by `init` (biases 0)."""
    settings = dict(in_channels=in_channels, out_channels=conv.out_channels, kernel_size=conv.kernel_size,
                    stride=conv.stride, padding=conv.padding, bias=conv.bias is not None)
    fresh = nn.Conv2d(**{**settings, **changes})
    init(fresh)
    if fresh.bias is not None:
        nn.init.zeros_(fresh.bias)
    return fresh


def _adapt_first_conv(conv: nn.Conv2d, where: str, in_channels: int, image_size: int,
                      init: Callable[[nn.Conv2d], None], small_input: dict, small_text: str,
                      adapted: list[str]) -> nn.Conv2d:
    """The first conv for the data: small_input changes below SMALL_INPUT, fresh where channels differ."""
    small = image_size < SMALL_INPUT and small_input
    if not small and in_channels == conv.in_channels:
        return conv
    if small:
        adapted.append(f"{where}: {small_text} for {image_size}x{image_size} inputs (CIFAR-style stem)")
    if in_channels != conv.in_channels:
        adapted.append(f"{where}: a fresh conv taking {in_channels} channel(s) (torchvision's takes "
                       f"{conv.in_channels})")
    elif small:
        adapted.append(f"{where}: a fresh conv of the new shape")
    return _fresh_conv(conv, in_channels, init, **(small_input if small else {}))


# ---------------------------------------------------------------- families
def _resnet(model, in_channels, image_size, num_classes):
    adapted: list[str] = []
    small = image_size < SMALL_INPUT
    model.conv1 = _adapt_first_conv(model.conv1, "conv1", in_channels, image_size, _kaiming,
                                    dict(kernel_size=3, stride=1, padding=1), "3x3 stride 1 (was 7x7 stride 2)",
                                    adapted)
    if small:
        model.maxpool = nn.Identity()
        adapted.append("maxpool: removed (CIFAR-style stem)")
    units = OrderedDict(stem=nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool))
    for stage in range(1, 5):
        for index, block in enumerate(getattr(model, f"layer{stage}")):
            units[f"layer{stage}.{index}"] = block
    return units, nn.Sequential(model.avgpool, nn.Flatten(1), model.fc), adapted


def _vgg(model, in_channels, image_size, num_classes):
    adapted: list[str] = []
    features = model.features
    features[0] = _adapt_first_conv(features[0], "features.0", in_channels, image_size, _kaiming, {}, "", adapted)
    if image_size < SMALL_INPUT:
        width = max(m.out_channels for m in features if isinstance(m, nn.Conv2d))
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        model.classifier = nn.Linear(width, num_classes)
        nn.init.normal_(model.classifier.weight, 0, 0.01)
        nn.init.zeros_(model.classifier.bias)
        adapted.append(f"head: global average pool and Linear({width} -> {num_classes}) (CIFAR VGG; was a 7x7 "
                       "pool and three Linear layers)")
        pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
        allowed = int(math.log2(image_size))
        for i in pools[allowed:]:
            features[i] = nn.Identity()
        if len(pools) > allowed:
            adapted.append(f"max pools: the last {len(pools) - allowed} removed ({image_size}x{image_size} "
                           f"inputs allow {allowed} halvings)")
    groups: list[tuple[str, list[nn.Module]]] = []  # (name of a conv, the conv and the layers after it)
    for index, layer in enumerate(features):
        if isinstance(layer, nn.Conv2d):
            groups.append((f"features.{index}", []))
        groups[-1][1].append(layer)
    units = OrderedDict((name, nn.Sequential(*layers)) for name, layers in groups)
    return units, nn.Sequential(model.avgpool, nn.Flatten(1), model.classifier), adapted


def _is_stage(part: nn.Module) -> bool:
    """A plain Sequential of blocks of one class (each with submodules): its blocks become units."""
    children = list(part.children())
    return (type(part) is nn.Sequential and len({type(c) for c in children}) == 1
            and all(any(True for _ in c.children()) for c in children))


def _feature_units(features: nn.Sequential, wrap: Callable[[nn.Module], nn.Module] = lambda m: m):
    units: OrderedDict[str, nn.Module] = OrderedDict()
    for index, part in enumerate(features):
        if _is_stage(part):
            for block_index, block in enumerate(part):
                units[f"features.{index}.{block_index}"] = wrap(block)
        else:
            units[f"features.{index}"] = part
    return units


def _mobilenet(model, in_channels, image_size, num_classes):
    adapted: list[str] = []
    stem = model.features[0]
    stem[0] = _adapt_first_conv(stem[0], "features.0 conv", in_channels, image_size, _kaiming, dict(stride=1),
                                "stride 1 (was 2)", adapted)
    pool = model.avgpool if hasattr(model, "avgpool") else nn.AdaptiveAvgPool2d(1)  # mobilenet_v2: functional
    return _feature_units(model.features), nn.Sequential(pool, nn.Flatten(1), model.classifier), adapted


def _convnext(model, in_channels, image_size, num_classes):
    adapted: list[str] = []
    stem = model.features[0]
    stem[0] = _adapt_first_conv(stem[0], "features.0 conv", in_channels, image_size, _truncated,
                                dict(kernel_size=2, stride=2), "2x2 stride 2 patchify (was 4x4 stride 4)", adapted)
    return _feature_units(model.features), nn.Sequential(model.avgpool, model.classifier), adapted


class _ChannelsLast(nn.Module):
    """(B, C, H, W) -> (B, H, W, C), contiguous."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 2, 3, 1).contiguous()


class _ChannelsFirst(nn.Module):
    """(B, H, W, C) -> (B, C, H, W), contiguous."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 3, 1, 2).contiguous()


def _swin(model, in_channels, image_size, num_classes):
    adapted: list[str] = []
    stem = model.features[0]
    stem[0] = _adapt_first_conv(stem[0], "features.0 conv", in_channels, image_size, _truncated,
                                dict(kernel_size=2, stride=2), "2x2 stride 2 patchify (was 4x4 stride 4)", adapted)

    def channels_first(block: nn.Module) -> nn.Module:
        return nn.Sequential(_ChannelsLast(), block, _ChannelsFirst())

    units = _feature_units(model.features, channels_first)
    for name, unit in units.items():  # entries that are not stage blocks
        if not (isinstance(unit, nn.Sequential) and isinstance(unit[0], _ChannelsLast)):
            units[name] = nn.Sequential(unit, _ChannelsFirst()) if unit is stem else channels_first(unit)
    head = nn.Sequential(_ChannelsLast(), model.norm, model.permute, model.avgpool, model.flatten, model.head)
    return units, head, adapted


class _VitEmbedding(nn.Module):
    """Patchify conv, class token and position embedding of a torchvision VisionTransformer:
    images (B, C, H, W) -> tokens (B, 1 + (H/P)(W/P), D)."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.conv_proj, self.class_token = vit.conv_proj, vit.class_token
        self.pos_embedding, self.dropout = vit.encoder.pos_embedding, vit.encoder.dropout

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.conv_proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(len(x), -1, -1), tokens], dim=1)
        return self.dropout(tokens + self.pos_embedding)


class _VitHead(nn.Module):
    """Final LayerNorm, the class token, the classifier: tokens (B, T, D) -> logits."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.ln, self.heads = vit.encoder.ln, vit.heads

    def forward(self, tokens: Tensor) -> Tensor:
        return self.heads(self.ln(tokens)[:, 0])


def _vit(model, in_channels, image_size, num_classes):
    adapted: list[str] = []
    model.conv_proj = _adapt_first_conv(model.conv_proj, "conv_proj", in_channels, image_size, _patchify, {}, "",
                                        adapted)
    patch = model.patch_size
    adapted.append(f"position embedding: built for {image_size}x{image_size} inputs "
                   f"({(image_size // patch) ** 2} patches of {patch}x{patch} + the class token)")
    units = OrderedDict(embedding=_VitEmbedding(model))
    for index, layer in enumerate(model.encoder.layers):
        units[f"encoder.layer{index}"] = layer
    return units, _VitHead(model), adapted


_SPLITTERS = {"resnet": _resnet, "vgg": _vgg, "mobilenet": _mobilenet, "convnext": _convnext, "swin": _swin,
              "vit": _vit}
