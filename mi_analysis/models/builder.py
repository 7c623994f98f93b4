"""Build a LocalNet from the package's CIFAR ResNets."""

from __future__ import annotations

from typing import Sequence

from .local import LocalNet
from .resnet import blocks_per_stage, resnet_units
from .splits import PAPER_TABLE, check_num_modules, check_split, paper_unit_cuts


def build(arch: str, num_modules: int, context: str = "R0", *, local_loss: str = "cross_entropy",
          aux_head: str = "1c2f", num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
          split: str = "equal", reconstruct: bool = False, aux_widen: float = 1,
          aux_feature_dim: int = 128, lambdas: Sequence[float] | None = None,
          input_mean=None, input_std=None, recompute_context: bool = False,
          dataset: str = "cifar10") -> LocalNet:
    """A CIFAR ResNet cut into `num_modules` modules (1 = end-to-end), as a LocalNet.

    arch: one of available_archs(). context: one of CONTEXT_MODES (R0 = plain greedy local
    learning). local_loss: "cross_entropy" or "contrast" (SupCon) for the local heads.
    aux_head: one of AUX_HEADS. split: "equal" or "balanced"; the paper's cut tables are used
    where they exist, else the rule documented in models/splits.py. reconstruct: add
    InfoPro's decoder to each local loss, weighted by `lambdas` = (lambda_x1, lambda_y1,
    lambda_x2, lambda_y2) (default: the paper's values for (arch, K, dataset), else
    heads.DEFAULT_LAMBDAS); input_mean/input_std (per channel) undo the input normalisation
    for the decoder's target. recompute_context: recompute context encoders in backward
    (less memory, same gradients). dataset: a hint that picks the paper tables (balanced
    cuts and lambdas differ for STL-10 and SVHN); it loads nothing.
    """
    per_stage = blocks_per_stage(arch)
    check_split(split)
    for name, value, minimum in (("num_classes", num_classes, 2), ("in_channels", in_channels, 1),
                                 ("image_size", image_size, 8)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if image_size % 4:
        raise ValueError(f"image_size must be divisible by 4 (two stride-2 stages), got {image_size}")
    check_num_modules(num_modules, 3 * per_stage + 1)
    units, classifier = resnet_units(arch, in_channels=in_channels, num_classes=num_classes)
    table = paper_unit_cuts(arch, num_modules, split, per_stage, dataset) if num_modules > 1 else None
    return LocalNet(units, num_modules if table is None else table, classifier,
                    input_shape=(in_channels, image_size, image_size), num_classes=num_classes,
                    context=context, local_loss=local_loss, aux_head=aux_head,
                    reconstruct=reconstruct, aux_widen=aux_widen, aux_feature_dim=aux_feature_dim,
                    lambdas=lambdas, input_mean=input_mean, input_std=input_std,
                    recompute_context=recompute_context, split=split, dataset=dataset, arch=arch,
                    split_rule=PAPER_TABLE if table is not None else None)
