"""Build a LocalNet from a ModelConfig and the data settings: build_model(ModelConfig, data settings)."""

from __future__ import annotations

from mi_analysis._util.checks import int_at_least

from .archs import RESNET, arch_kind
from .config import ModelConfig
from .external import build_external
from .init import DEFAULT_SEED, global_generator_kept, init_parts_
from .local import LocalNet
from .resnet import blocks_per_stage, resnet_units
from .splits import PAPER_TABLE, check_num_modules, paper_unit_cuts


def build_model(config: ModelConfig, *, num_classes: int, in_channels: int, image_size: int,
                input_mean=None, input_std=None, dataset: str = "cifar10", seed: int = DEFAULT_SEED) -> LocalNet:
    """The network `config.arch` cut into `config.num_modules` modules (1 = end-to-end).

    The data set fixes the rest: num_classes, in_channels and image_size (square images; for the
    CIFAR ResNets a multiple of 4: two stride-2 stages); input_mean/input_std (per channel) undo
    the input normalisation for the decoders' target (reconstruct=True). dataset: a hint that picks
    the paper tables (balanced cuts and lambdas differ for STL-10 and SVHN); it loads nothing.
    Cuts: the paper's tables where they exist, else the rule documented in models/splits.py.
    torchvision:NAME and package.module:factory archs: models/external.py.
    seed: every part (units, classifier, heads, decoders, context encoders) is initialised from
    (seed, part name) (models/init.py), so the parts two modes share are bit-identical, and the
    global torch generator is left as it was. A run passes its training seed.
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
    in_channels = int_at_least(in_channels, "in_channels", 1)
    if arch_kind(config.arch) != RESNET:
        return build_external(config, num_classes=int_at_least(num_classes, "num_classes", 2),
                              in_channels=in_channels, image_size=int_at_least(image_size, "image_size", 1),
                              input_mean=input_mean, input_std=input_std, dataset=dataset, seed=seed)
    image_size = int_at_least(image_size, "image_size", 8)
    if image_size % 4:
        raise ValueError(f"image_size must be divisible by 4 (two stride-2 stages), got {image_size}")
    c = config
    per_stage = blocks_per_stage(c.arch)
    check_num_modules(c.num_modules, 3 * per_stage + 1)  # units: the stem and 3 stages of blocks
    seed = int_at_least(seed, "seed", 0)
    with global_generator_kept():
        units, classifier = resnet_units(c.arch, in_channels=in_channels,
                                         num_classes=int_at_least(num_classes, "num_classes", 2))
    init_parts_({**{f"units.{name}": unit for name, unit in units.items()}, "classifier": classifier}, seed)
    table = (paper_unit_cuts(c.arch, c.num_modules, c.split, per_stage, dataset)
             if c.num_modules > 1 else None)
    return LocalNet(units, c.num_modules if table is None else table, classifier,
                    input_shape=(in_channels, image_size, image_size), num_classes=num_classes,
                    context=c.context, local_loss=c.local_loss, aux_head=c.aux_head, local_rule=c.local_rule,
                    reconstruct=c.reconstruct, aux_widen=c.aux_widen, aux_feature_dim=c.aux_feature_dim,
                    lambdas=c.lambdas, input_mean=input_mean, input_std=input_std,
                    recompute_context=c.recompute_context,
                    lean_context_backward=c.lean_context_backward, split=c.split, dataset=dataset, arch=c.arch,
                    split_rule=PAPER_TABLE if table is not None else None, seed=seed)


def build(arch: str, num_modules: int, context: str = ModelConfig.context, *, num_classes: int = 10,
          in_channels: int = 3, image_size: int = 32, input_mean=None, input_std=None,
          dataset: str = "cifar10", seed: int = DEFAULT_SEED, **options) -> LocalNet:
    """build_model(ModelConfig(arch, num_modules, context, **options), ...) in one call; the data
    settings default to CIFAR-10's (10 classes, 3 x 32 x 32).

    arch: one of available_archs(), "torchvision:NAME" or "package.module:factory". context: one
    of CONTEXT_MODES. options: the other ModelConfig fields (local_loss, aux_head, split, reconstruct, aux_widen,
    aux_feature_dim, lambdas, recompute_context, lean_context_backward), with ModelConfig's defaults.
    seed: the init's (see build_model; default 0, so two calls give the same weights whatever the
    global generator's state).
    """
    config = ModelConfig(arch=arch, num_modules=num_modules, context=context, **options)
    return build_model(config, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                       input_mean=input_mean, input_std=input_std, dataset=dataset, seed=seed)
