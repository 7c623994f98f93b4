import json

import pytest
import torch
from torch import nn

from mi_analysis import cli
from mi_analysis.models import LocalNet, build
from mi_analysis.profiling.costs import forward_flops_per_image, part_costs, training_step_flops, training_step_memory


BATCH, WIDTH, CLASSES, UNITS = 8, 32, 5, 4
LINEAR = 2 * BATCH * WIDTH * WIDTH  # FLOPs of one (WIDTH -> WIDTH) Linear on the batch
HEAD = 2 * BATCH * WIDTH * CLASSES  # FLOPs of one (WIDTH -> CLASSES) Linear on the batch


def _mlp_net(cuts, context="R0"):
    torch.manual_seed(0)
    units = [nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU()) for _ in range(UNITS)]
    return LocalNet.from_units(units, cuts, nn.Linear(WIDTH, CLASSES), input_shape=(WIDTH,),
                               num_classes=CLASSES, aux_head="0c1f", context=context)


def _batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, WIDTH, generator=generator), torch.randint(0, CLASSES, (BATCH,), generator=generator)


def test_forward_flops_per_image_of_a_linear():
    assert forward_flops_per_image(nn.Linear(10, 4), (10,)) == 2 * 10 * 4


@pytest.mark.parametrize("cuts", [[], [1], [0, 1, 2]])
def test_training_step_flops_known_answer(cuts):
    """Forward: every Linear once, plus one head per local module. Backward: a weight gradient for
    every Linear, and an input gradient only where the input needs one; a module's input is
    detached, so its first Linear has none (nor has the network's first)."""
    num_modules = len(cuts) + 1
    flops = training_step_flops(_mlp_net(cuts), *_batch())
    forward = UNITS * LINEAR + num_modules * HEAD
    input_gradients = (UNITS - num_modules) * LINEAR + num_modules * HEAD
    assert flops["forward"] == forward
    assert flops["step"] == 2 * forward + input_gradients
    assert flops["ops"] > 0


def test_training_step_flops_count_context_encoders():
    """Context E adds two Linear layers per cut (WIDTH -> 12 -> WIDTH) to the forward."""
    plain = training_step_flops(_mlp_net([0, 1, 2]), *_batch())["forward"]
    with_context = training_step_flops(_mlp_net([0, 1, 2], context="E"), *_batch())["forward"]
    assert with_context - plain == 3 * (2 * BATCH * WIDTH * 12 + 2 * BATCH * 12 * WIDTH)


def test_measurements_leave_the_model_as_found():
    net = build("resnet20", 3, "E", image_size=16)
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    training_step_flops(net, x, y)
    memory = training_step_memory(net, 4, (3, 16, 16), 10)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # parameters and BN statistics
    assert all(p.grad is None for p in net.parameters())
    assert not any(m.training for m in net.modules())
    assert memory["optimizer_state_bytes"] == memory["parameter_bytes"]  # one momentum buffer each
    assert len(memory["module_peak_saved_bytes"]) == 3


def test_recompute_context_lowers_saved_peak_not_results():
    kwargs = dict(image_size=16)
    plain = training_step_memory(build("resnet20", 4, "E", **kwargs), 4, (3, 16, 16), 10)
    recompute = training_step_memory(build("resnet20", 4, "E", recompute_context=True, **kwargs), 4, (3, 16, 16), 10)
    assert recompute["peak_saved_bytes"] < plain["peak_saved_bytes"]
    # with recomputation only the encoders' input crosses a cut
    assert max(recompute["retained_saved_bytes_at_module_start"]) < max(plain["retained_saved_bytes_at_module_start"])


def test_describe_reports_the_same_memory(capsys):
    """`mi-analysis describe --memory-batch` and the benchmarks share training_step_memory."""
    code = cli.main(["describe", "--arch", "resnet20", "--modules", "4", "--context", "R0", "--image-size", "16",
                     "--memory-batch", "4", "--json"])
    assert code == 0
    described = json.loads(capsys.readouterr().out)["memory"]
    direct = training_step_memory(build("resnet20", 4, "R0", image_size=16), 4, (3, 16, 16), 10)
    assert described == direct


@pytest.mark.parametrize("context", ["R0", "E"])
def test_parts_add_up_to_the_step_forward(context):
    """Every matmul of the step's forward belongs to exactly one part (units, heads, encoders, classifier)."""
    net = _mlp_net([0, 1, 2], context=context)
    x, y = _batch()
    parts = part_costs(net, x, y, repeats=1)
    kinds = [p["kind"] for p in parts]
    assert kinds.count("unit") == UNITS and kinds.count("head") == 3 and kinds.count("classifier") == 1
    assert kinds.count("encoder") == (3 if context == "E" else 0)
    assert sum(p["forward_flops"] for p in parts) == training_step_flops(net, x, y)["forward"]
    assert all(p["seconds"] > 0 for p in parts)
    assert all(p.grad is None for p in net.parameters())  # left as found
