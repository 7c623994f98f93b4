"""ModelConfig: the one record of the model options; build_model(config, data settings); run_mode."""
import dataclasses

import numpy as np
import pytest
import torch

from mi_analysis.models import E2E, LocalNet, ModelConfig, build, build_model, run_mode
from mi_analysis.models.config import check_options


@pytest.mark.parametrize("field, value, error, message", [
    ("arch", "resnet18", ValueError, r"^arch='resnet18' is unknown; expected one of \('resnet20', 'resnet32'"),
    ("num_modules", 0, ValueError, r"^num_modules must be an int >= 1, got 0$"),
    ("num_modules", 2.0, ValueError, r"^num_modules must be an int >= 1, got 2.0$"),
    ("context", "R3", ValueError, r"^context='R3' is unknown; expected one of \('R0', 'E'"),
    ("local_loss", "mse", ValueError, r"^local_loss='mse' is unknown; expected one of \('cross_entropy', 'contrast'\)$"),
    ("aux_head", "1c9f", ValueError, r"^aux_head='1c9f' is unknown; expected one of \('0c1f'"),
    ("split", "memory", ValueError, r"^split='memory' is unknown; expected one of \('equal', 'balanced'\)$"),
    ("reconstruct", "yes", TypeError, r"^reconstruct must be True or False, got 'yes'$"),
    ("aux_widen", 0, ValueError, r"^aux_widen must be a positive number, got 0$"),
    ("aux_widen", float("inf"), ValueError, r"^aux_widen must be a positive number, got inf$"),
    ("aux_feature_dim", 0, ValueError, r"^aux_feature_dim must be an int >= 1, got 0$"),
    ("lambdas", (1, 2), ValueError, r"^lambdas must be 4 non-negative numbers \(lambda_x1, lambda_y1, lambda_x2, lambda_y2\), got \(1, 2\)$"),
    ("lambdas", (1, -1, 0, 1), ValueError, r"^lambdas must be 4 non-negative numbers"),
    ("recompute_context", 1, TypeError, r"^recompute_context must be True or False, got 1$"),
    ("lean_context_backward", "no", TypeError, r"^lean_context_backward must be True or False, got 'no'$"),
])
def test_each_field_is_checked_on_creation_and_the_error_names_it(field, value, error, message):
    with pytest.raises(error, match=message):
        ModelConfig(**{field: value})


def test_every_field_has_help_and_a_check():
    for field in dataclasses.fields(ModelConfig):
        assert field.metadata["help"] and callable(field.metadata["check"]), field.name
        assert check_options(**{field.name: field.default}) == {field.name: field.default}


def test_values_are_normalised_once():
    config = ModelConfig(num_modules=np.int64(4), context="E", lambdas=np.array([5, 0, 0.5, 1]))
    assert type(config.num_modules) is int and config.num_modules == 4
    assert config.lambdas == (5.0, 0.0, 0.5, 1.0) and all(type(v) is float for v in config.lambdas)
    assert hash(config) == hash(ModelConfig(num_modules=4, context="E", lambdas=(5, 0, 0.5, 1)))


def test_combinations_are_checked_when_the_net_is_built():
    """A config may pass through K=1 with context E in an override; building it fails."""
    config = ModelConfig(arch="resnet20", context="E")
    with pytest.raises(ValueError, match=r"context='E' needs num_modules >= 2"):
        build_model(config, num_classes=10, in_channels=3, image_size=16)
    with pytest.raises(ValueError, match=r"num_modules=11 exceeds the number of units \(10\)"):
        build_model(ModelConfig(arch="resnet20", num_modules=11), num_classes=10, in_channels=3, image_size=16)


def _parameters(net):
    return {name: tensor.clone() for name, tensor in net.state_dict().items()}


@pytest.mark.parametrize("options", [
    {},
    {"local_loss": "contrast", "aux_head": "0c2f", "aux_widen": 2.0, "aux_feature_dim": 32},
    {"reconstruct": True, "lambdas": (1.0, 0.5, 0.0, 1.0), "split": "balanced", "recompute_context": True},
    {"lean_context_backward": False},
])
def test_build_and_build_model_give_bit_identical_parameters(options):
    torch.manual_seed(3)
    a = build("resnet20", 4, "R1E", num_classes=7, in_channels=1, image_size=16, dataset="svhn", **options)
    torch.manual_seed(3)
    config = ModelConfig(arch="resnet20", num_modules=4, context="R1E", **options)
    b = build_model(config, num_classes=7, in_channels=1, image_size=16, dataset="svhn")
    pa, pb = _parameters(a), _parameters(b)
    assert list(pa) == list(pb)
    assert all(torch.equal(pa[name], pb[name]) for name in pa)
    assert a.describe() == b.describe() and a.config == b.config


def test_build_defaults_are_model_config_defaults():
    net = build("resnet20", 1)
    defaults = ModelConfig()
    for name in ("context", "local_loss", "aux_head", "split", "reconstruct", "aux_widen",
                 "aux_feature_dim", "lambdas", "recompute_context", "lean_context_backward"):
        assert net.config[name] == getattr(defaults, name), name


def test_lean_context_backward_round_trips_through_build_and_config_and_is_described():
    assert ModelConfig().lean_context_backward is True
    config = ModelConfig(arch="resnet20", num_modules=4, context="E", lean_context_backward=False)
    net = build_model(config, num_classes=10, in_channels=3, image_size=16)
    assert net.context.lean_backward is False
    assert net.config["lean_context_backward"] is False and net.describe()["lean_context_backward"] is False
    again = build(**net.config)
    assert again.context.lean_backward is False and again.config == net.config
    assert build("resnet20", 4, "E", image_size=16).describe()["lean_context_backward"] is True


def test_build_model_wants_a_model_config_and_valid_data_settings():
    with pytest.raises(TypeError, match=r"config must be a ModelConfig, got dict"):
        build_model({"arch": "resnet20"}, num_classes=10, in_channels=3, image_size=16)
    with pytest.raises(ValueError, match=r"num_classes must be an int >= 2, got 1"):
        build_model(ModelConfig(arch="resnet20"), num_classes=1, in_channels=3, image_size=16)


def test_run_mode_is_e2e_for_one_module_else_the_context():
    assert run_mode(1, "R0") == E2E == "E2E"
    assert [run_mode(4, c) for c in ("R0", "E", "R1E")] == ["R0", "E", "R1E"]
    assert ModelConfig().mode == "E2E" and ModelConfig(num_modules=2, context="E").mode == "E"
    assert build("resnet20", 1).mode == "E2E" and build("resnet20", 3, "R1E", image_size=16).mode == "R1E"
    assert isinstance(build("resnet20", 2, image_size=16), LocalNet) and build("resnet20", 2, image_size=16).mode == "R0"
