"""Common random numbers: parts initialised from (seed, part name), shared across context modes."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

from mi_analysis.models import LocalNet, build
from mi_analysis.models.init import part_seed

LOCAL_MODES = ("R0", "E", "R1", "R1E")


def tiny(k, context, **kw):
    # the default 1c2f heads: their hidden Linear draws from the generator after the convs
    return build("resnet20", k, context, image_size=8, num_classes=4, **kw)


def module_state(net, k):
    """Module k's own parameters and buffers: its units and its aux head (classifier if last)."""
    parts = net.module_parts(k)
    own = [p for p in parts if not any(p is e for e in net.context.encoders.values())]
    return [t.detach().clone() for part in own for t in (*part.parameters(), *part.buffers())]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_part_seed_is_stable_and_separates_names_and_seeds():
    assert part_seed(0, "aux_heads.0") == part_seed(0, "aux_heads.0")  # no per-process salt
    seeds = {part_seed(s, n) for s in (0, 1) for n in ("aux_heads.0", "aux_heads.1", "units.stem")}
    assert len(seeds) == 6 and all(0 <= s < 2**63 for s in seeds)


def test_module_0_and_every_head_are_identical_at_init_across_local_modes():
    nets = {mode: tiny(4, mode) for mode in LOCAL_MODES}
    r0 = nets["R0"]
    for mode, net in nets.items():
        assert same(module_state(net, 0), module_state(r0, 0)), mode
        for k in range(3):
            assert same(list(net.aux_heads[k].state_dict().values()),
                        list(r0.aux_heads[k].state_dict().values())), (mode, k)
    # the encoders E and R1E share are identical too
    e, r1e = nets["E"].context.encoders, nets["R1E"].context.encoders
    assert same(list(e["cut2_E"].state_dict().values()), list(r1e["cut2_E"].state_dict().values()))


def test_module_0_stays_identical_across_local_modes_after_training_on_the_same_batches():
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 4, (8,), generator=g)) for _ in range(3)]
    trained = {}
    for mode in LOCAL_MODES:
        net = tiny(4, mode)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        for x, y in batches:
            opt.zero_grad()
            net.training_step(x, y)
            opt.step()
        trained[mode] = net
    start = module_state(tiny(4, "R0"), 0)
    assert not same(module_state(trained["R0"], 0), start)  # it did train
    for mode in LOCAL_MODES[1:]:
        assert same(module_state(trained[mode], 0), module_state(trained["R0"], 0)), mode
    # the modules that read context do differ
    assert not same(module_state(trained["E"], 1), module_state(trained["R0"], 1))


def test_end_to_end_backbone_equals_the_greedy_backbone_at_init():
    e2e, gll = tiny(1, "R0"), tiny(4, "E")
    assert same(list(e2e.units.state_dict().values()), list(gll.units.state_dict().values()))
    assert same(list(e2e.classifier.state_dict().values()), list(gll.classifier.state_dict().values()))


def test_building_leaves_the_global_generator_alone_and_the_seed_decides():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = tiny(4, "R1E", reconstruct=True, lambdas=(1, 1, 1, 1))
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(7)  # another global state gives the same weights ...
    b = tiny(4, "R1E", reconstruct=True, lambdas=(1, 1, 1, 1))
    assert same(list(a.state_dict().values()), list(b.state_dict().values()))
    c = tiny(4, "R1E", reconstruct=True, lambdas=(1, 1, 1, 1), seed=1)  # ... another seed does not
    assert not torch.equal(a.aux_heads[0][0].weight, c.aux_heads[0][0].weight)
    assert not torch.equal(a.units[0][0].weight, c.units[0][0].weight)
    assert not torch.equal(a.decoders["0"].net[0].weight, c.decoders["0"].net[0].weight)


def test_user_units_keep_their_own_init():
    torch.manual_seed(0)
    units = OrderedDict(a=nn.Linear(6, 5), b=nn.Linear(5, 5))
    head = nn.Linear(5, 3)
    weights = [units["a"].weight.clone(), units["b"].weight.clone(), head.weight.clone()]
    net = LocalNet.from_units(units, [0], head, input_shape=(6,), num_classes=3, aux_head="0c1f", seed=4)
    assert same([net.units[0].weight, net.units[1].weight, net.classifier.weight], weights)


def test_seed_must_be_a_non_negative_integer():
    with pytest.raises(ValueError, match="seed"):
        tiny(2, "R0", seed=-1)
