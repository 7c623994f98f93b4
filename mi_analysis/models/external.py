"""Networks from outside the package: "torchvision:NAME" and "package.module:factory" archs.

Both become a LocalNet like the CIFAR ResNets, cut into ModelConfig.num_modules modules by the
config's split rule (equal units or balanced activation sizes, models/splits.py). A factory is
called with keyword arguments num_classes=, in_channels=, image_size= (an int: square images) and
returns either (units, head) (units: a sequence or ordered mapping of modules in forward order;
head: the classifier from the last unit's output to logits) or a ready LocalNet, which fixes its
own modules, context and heads: then those ModelConfig options must be left at their defaults or
equal the net's (`recorded_config` writes the net's into a run's config).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from .archs import FACTORY, TORCHVISION, arch_kind, factory_path
from .config import ModelConfig
from .init import DEFAULT_SEED, global_generator_kept
from .local import LocalNet, _unit_output_shapes
from .torchvision_units import torchvision_units


def import_factory(arch: str):
    """The function named by a "package.module:factory" arch; a ValueError saying why not."""
    module_name, name = factory_path(arch)
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # a module that fails while importing is as unusable as a missing one
        raise ValueError(f"arch={arch!r}: cannot import module {module_name!r} ({type(err).__name__}: {err}); "
                         "the factory's module must be importable (installed or on PYTHONPATH)") from err
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ValueError(f"arch={arch!r}: module {module_name!r} has no function {name!r}")
    return factory


def call_factory(arch: str, *, num_classes: int, in_channels: int, image_size: int):
    """(units, head) or a LocalNet, as the factory returned it (checked)."""
    factory = import_factory(arch)
    settings = dict(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    try:
        inspect.signature(factory).bind(**settings)
    except TypeError as err:
        raise ValueError(f"arch={arch!r}: the factory must take the keyword arguments num_classes, in_channels "
                         f"and image_size ({err})") from err
    except ValueError:  # no signature to read (a builtin): let the call decide
        pass
    made = factory(**settings)
    if isinstance(made, LocalNet):
        return made
    ok = (isinstance(made, tuple) and len(made) == 2 and isinstance(made[1], nn.Module)
          and isinstance(made[0], (Sequence, Mapping, nn.ModuleList, nn.ModuleDict, nn.Sequential))
          and not isinstance(made[0], (str, bytes)))
    if not ok:
        raise ValueError(f"arch={arch!r}: the factory must return (units, head) (units: a list or ordered dict "
                         f"of nn.Module; head: an nn.Module) or a LocalNet, got {_describe(made)}")
    return made


def _describe(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} ({', '.join(type(v).__name__ for v in value)})"
    return type(value).__name__


def _fixed_by_net(net: LocalNet) -> dict[str, Any]:
    """The ModelConfig options a LocalNet fixes itself."""
    options = {**net.config, "num_modules": net.num_modules}
    if options["lambdas"] is not None:
        options["lambdas"] = tuple(options["lambdas"])  # as ModelConfig keeps them
    return {field.name: options[field.name] for field in dataclasses.fields(ModelConfig) if field.name != "arch"}


def _check_not_conflicting(config: ModelConfig, net: LocalNet, num_classes: int, input_shape: tuple) -> None:
    if (net._num_classes, net._input_shape) != (num_classes, input_shape):
        raise ValueError(f"arch={config.arch!r} returns a LocalNet for {net._num_classes} classes and inputs "
                         f"{net._input_shape}; the data set has {num_classes} classes and inputs {input_shape}")
    defaults = ModelConfig()
    for name, fixed in _fixed_by_net(net).items():
        given = getattr(config, name)
        if given != getattr(defaults, name) and given != fixed:
            flag = {"num_modules": " (-K)", "context": " (--context)"}.get(name, "")
            raise ValueError(f"arch={config.arch!r} returns a LocalNet, which fixes its own {name}={fixed!r}; "
                             f"{name}{flag}={given!r} conflicts: leave it out")


def recorded_config(config: ModelConfig, *, num_classes: int, in_channels: int, image_size: int) -> ModelConfig:
    """The ModelConfig a run records: `config`, except that for a factory returning a LocalNet the
    options the net fixes (num_modules, context, ...) are the net's, so that the run's name, its
    config and its tables say what was trained."""
    if arch_kind(config.arch) != FACTORY:
        return config
    with global_generator_kept():
        made = call_factory(config.arch, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    if not isinstance(made, LocalNet):
        return config
    _check_not_conflicting(config, made, num_classes, (in_channels, image_size, image_size))
    return dataclasses.replace(config, **_fixed_by_net(made))


def build_external(config: ModelConfig, *, num_classes: int, in_channels: int, image_size: int,
                   input_mean=None, input_std=None, dataset: str = "cifar10", seed: int = DEFAULT_SEED) -> LocalNet:
    """The LocalNet of a torchvision or factory arch (module docstring). The units and the
    classifier keep the initialisation torchvision or the factory gives them (drawn from the global
    generator, which is put back afterwards, so data order does not depend on the model); the parts
    the package adds (heads, decoders, context encoders) are initialised from (seed, part name)."""
    c = config
    unit_rule, adapted = None, ()
    if arch_kind(c.arch) == TORCHVISION:
        with global_generator_kept():
            split = torchvision_units(c.arch.split(":", 1)[1], num_classes=num_classes, in_channels=in_channels,
                                      image_size=image_size)
        units, head, unit_rule, adapted = split.units, split.head, f"torchvision {split.family}: {split.rule}", \
            split.adapted
    else:
        with global_generator_kept():
            made = call_factory(c.arch, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
        if isinstance(made, LocalNet):
            _check_not_conflicting(c, made, num_classes, (in_channels, image_size, image_size))
            made.arch = c.arch
            return made
        units, head = made
        unit_rule = "the factory's units"
    input_shape = (in_channels, image_size, image_size)
    names = list(units.keys()) if isinstance(units, (Mapping, nn.ModuleDict)) else None
    unit_list = list(units.values()) if names is not None else list(units)
    if c.num_modules > len(unit_list):
        raise ValueError(f"num_modules={c.num_modules} exceeds the {len(unit_list)} units of arch={c.arch!r}; "
                         "each module needs at least one unit")
    try:
        _unit_output_shapes(names or [f"u{i}" for i in range(len(unit_list))], unit_list, head,
                            input_shape, num_classes)
    except (RuntimeError, TypeError) as err:  # e.g. a pooling or conv the image has become too small for
        raise ValueError(f"arch={c.arch!r} cannot take {in_channels}x{image_size}x{image_size} inputs: {err}") \
            from err
    return LocalNet(units, c.num_modules, head, input_shape=input_shape, num_classes=num_classes,
                    context=c.context, local_loss=c.local_loss, aux_head=c.aux_head, local_rule=c.local_rule,
                    reconstruct=c.reconstruct,
                    aux_widen=c.aux_widen, aux_feature_dim=c.aux_feature_dim, lambdas=c.lambdas,
                    input_mean=input_mean, input_std=input_std, recompute_context=c.recompute_context,
                    lean_context_backward=c.lean_context_backward,
                    split=c.split, dataset=dataset, arch=c.arch, unit_rule=unit_rule, adapted=adapted,
                    seed=seed)
