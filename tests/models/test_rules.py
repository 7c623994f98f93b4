"""Local-learning rules (models/rules.py): gradient isolation, AugLocal's subset and depth schedule,
MAN's momentum copies, the heads' parameter counts, bad combinations."""
import itertools

import pytest
import torch

from mi_analysis.models import build
from mi_analysis.models.config import ModelConfig, run_label
from mi_analysis.models.rules import (AUGLOCAL_DEPTH, AUGLOCAL_PYRAMID, MAN_MOMENTUM, auglocal_depths,
                                      auglocal_units)


def small(rule, context="R0", k=4, arch="resnet20", **kw):
    torch.manual_seed(0)
    return build(arch, k, context, image_size=16, local_rule=rule, **kw)


def batch(n=8, size=16):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, size, size, generator=g), torch.arange(n) % 4


def count(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


@pytest.mark.parametrize("rule, context", list(itertools.product(("gll", "auglocal", "man"), ("R0", "E", "R1E"))))
def test_each_module_loss_reaches_exactly_its_own_trainable_parameters(rule, context):
    net = small(rule, context)
    x, y = batch()
    params = [p for p in net.parameters() if p.requires_grad]
    names = {id(p): n for n, p in net.named_parameters()}
    for k, h in net._walk(x):
        loss, _, _ = net.module_loss(k, h, y)
        grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
        reached = {names[id(p)] for p, g in zip(params, grads) if g is not None}
        own = {names[id(p)] for part in net.module_parts(k) for p in part.parameters() if p.requires_grad}
        assert reached == own, (k, sorted(reached ^ own)[:5])


@pytest.mark.parametrize("cuts, last, depth, pyramid, depths", [
    ((3, 7, 11), 15, 2, 0.5, (2, 2, 2)),       # the authors' ResNet-32 setting: 2 falls to round(1.5) = 2
    ((0, 1, 2), 3, 2, 0.5, (2, 2, 1)),         # capped by the units left (3 - 2 = 1)
    ((5,), 9, 2, 0.5, (2,)),                   # one local module: d
    ((1, 3, 5, 7, 9, 11, 13), 15, 4, 1.0, (4, 4, 3, 2, 2, 2, 1)),  # 4, 3.5, 3, 2.5, 2, 1.5, 1 (round half to even)
    ((3, 7, 11), 15, 3, 1.0, (3, 2, 1)),
])
def test_auglocal_depth_schedule_is_the_documented_pyramid(cuts, last, depth, pyramid, depths):
    assert auglocal_depths(cuts, last, depth, pyramid) == depths
    steps = max(len(cuts) - 1, 1)
    assert depths == tuple(min(last - c, max(1, round(depth * (1 - i * pyramid / steps) + i * pyramid / steps)))
                           for i, c in enumerate(cuts))


def test_auglocal_default_schedule_is_the_authors_resnet32_setting():
    assert (AUGLOCAL_DEPTH, AUGLOCAL_PYRAMID) == (2, 0.5)
    assert auglocal_depths((3, 7, 11), 15) == (2, 2, 2)


def test_auglocal_subset_is_uniformly_spaced_and_ends_at_the_last_unit():
    assert auglocal_units(3, 15, 3) == (7, 11, 15)
    assert auglocal_units(7, 15, 2) == (11, 15)
    assert auglocal_units(0, 10, 4) == (2, 5, 8, 10)  # round(2.5) = 2, 5, round(7.5) = 8, 10
    assert auglocal_units(12, 15, 3) == (13, 14, 15)  # as deep as the units left: all of them
    for cut, last in itertools.product(range(6), range(6, 14)):
        for depth in range(1, last - cut + 1):
            chosen = auglocal_units(cut, last, depth)
            steps = [b - a for a, b in zip((cut,) + chosen, chosen)]
            assert len(chosen) == depth and chosen[-1] == last and min(steps) >= 1
            assert max(steps) - min(steps) <= 1  # as even as integers allow


def test_auglocal_heads_hold_fresh_copies_of_the_chosen_units_and_the_classifier():
    net = small("auglocal", arch="resnet32")  # 16 units: stem, 3 stages of 5 blocks
    assert net.cuts == (3, 7, 11)
    # depths (2, 2, 2); units round(c + i (15 - c) / 2): 9 15, 11 15, 13 15; units 9 and 15 of the first
    # head take another stage's shape than the one before them, so an adapter precedes each
    expected = [["adapt9", "unit9", "adapt15", "unit15", "classifier"], ["unit11", "unit15", "classifier"],
                ["unit13", "unit15", "classifier"]]
    assert [list(dict(head.named_children())) for head in net.aux_heads] == expected
    for head in net.aux_heads:
        for name, part in head.named_children():
            original = net.classifier if name == "classifier" else (
                net.units[int(name[4:])] if name.startswith("unit") else None)
            if original is None:
                continue
            assert [p.shape for p in part.parameters()] == [p.shape for p in original.parameters()]
            shared = {p.data_ptr() for p in part.parameters()} & {p.data_ptr() for p in original.parameters()}
            assert not shared
    # seeded: the same seed gives the same heads
    again = small("auglocal", arch="resnet32")
    for a, b in zip(net.aux_heads.parameters(), again.aux_heads.parameters()):
        assert torch.equal(a, b)


def test_heads_parameter_counts():
    gll, aug, man = (small(rule, arch="resnet32") for rule in ("gll", "auglocal", "man"))
    # AugLocal: the chosen units, the classifier and two adapters (16 -> 32 and 32 -> 64 channels: 1x1 conv + BN)
    units = aug.units
    adapters = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert aug.parameter_counts()["local_heads"] == (
        count(units[9], units[15], aug.classifier) + adapters
        + count(units[11], units[15], aug.classifier) + count(units[13], units[15], aug.classifier))
    # MAN (the authors' code): per head, a trainable copy of the unit after the cut plus the gll head of
    # that unit's output (trained), and a momentum copy of the same unit (frozen)
    trainable = sum(p.numel() for p in man.aux_heads.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in man.aux_heads.parameters() if not p.requires_grad)
    next_units = [man.units[c + 1] for c in man.cuts]  # cuts 3, 7, 11 of ResNet-20: units 4, 8, 12
    assert [c + 1 for c in man.cuts] == [4, 8, 12]
    assert count(man.aux_heads[0].head) == count(gll.aux_heads[0])  # unit 4 keeps unit 3's shape
    assert trainable == count(*next_units) + sum(count(h.head) for h in man.aux_heads)
    assert frozen == count(*next_units)
    counts = man.parameter_counts()
    assert (counts["local_heads"], counts["momentum_copies"]) == (trainable, frozen)
    assert counts["total"] == count(man) and "momentum_copies" not in gll.parameter_counts()


def test_man_momentum_copy_starts_equal_and_follows_the_next_unit_by_the_momentum():
    net = small("man", arch="resnet32")
    head, next_unit = net.aux_heads[0], net.units[net.cuts[0] + 1]
    sources = list(next_unit.parameters())
    for ema, source in zip(head.ema.parameters(), sources, strict=True):
        assert torch.equal(ema, source) and not ema.requires_grad
    # the learnable copy has its own weights, trained by the local loss
    learned = [p for p in head.learned.parameters() if p.dim() > 1]
    assert all(p.requires_grad for p in head.learned.parameters())
    assert not any(torch.equal(p, q) for p, q in zip(learned, [q for q in sources if q.dim() > 1]))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    x, y = batch()
    learned_before = [p.detach().clone() for p in head.learned.parameters()]
    net.training_step(x, y)
    assert all(p.grad is not None for p in head.learned.parameters())
    optimizer.step()
    assert any(not torch.equal(a, b) for a, b in zip(head.learned.parameters(), learned_before))
    before = [p.detach().clone() for p in head.ema.parameters()]
    net.zero_grad()
    net.training_step(x, y)  # first the copies follow the stepped weights
    for ema, old, source in zip(head.ema.parameters(), before, sources):
        torch.testing.assert_close(ema, MAN_MOMENTUM * old + (1 - MAN_MOMENTUM) * source.detach())
    assert any(not torch.equal(a, b) for a, b in zip(head.ema.parameters(), before))


def test_rules_reject_what_they_cannot_build():
    with pytest.raises(ValueError, match="local_rule"):
        ModelConfig(local_rule="hebbian")
    with pytest.raises(ValueError, match="local_rule='auglocal'.*local_loss='cross_entropy'"):
        small("auglocal", local_loss="contrast")


def test_rules_label_runs_and_describe_themselves():
    assert run_label(4, "R0", "auglocal") == "R0@auglocal" and run_label(4, "E", "gll") == "E"
    assert run_label(1, "R0", "man") == "E2E"
    assert ModelConfig(num_modules=4, local_rule="man").label == "R0@man"
    net = small("man", context="E")
    assert net.describe()["local_rule"] == "man" and net.local_rule == "man"
    assert net.config["local_rule"] == "man"
    rebuilt = build(**{**net.config, "image_size": 16})
    assert rebuilt.local_rule == "man"
