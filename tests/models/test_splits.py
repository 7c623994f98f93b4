"""Cut tables of the paper and the rules for other depths and K."""
import itertools
import random

import pytest

from mi_analysis.models import build, splits

# InfoPro's and ContSup's cut tables, (stage, block) as published (docs/models.md)
EQUAL_32 = {
    2: [(2, 1)], 3: [(1, 4), (2, 4)], 4: [(1, 2), (2, 1), (3, 0)],
    8: [(1, 0), (1, 2), (1, 4), (2, 1), (2, 3), (3, 0), (3, 2)],
    16: [(0, 0)] + [(1, b) for b in range(5)] + [(2, b) for b in range(5)] + [(3, b) for b in range(4)],
}
EQUAL_110 = {
    2: [(2, 8)], 3: [(1, 17), (2, 17)], 4: [(1, 11), (2, 7), (3, 3)],
    8: [(1, 4), (1, 11), (2, 0), (2, 7), (2, 14), (3, 3), (3, 10)],
    16: [(1, 1), (1, 4), (1, 7), (1, 10), (1, 13), (1, 16), (2, 1), (2, 4), (2, 7), (2, 11), (2, 15),
         (3, 1), (3, 5), (3, 9), (3, 13)],
}
BALANCED_32 = {2: [(1, 3)], 4: [(1, 2), (1, 4), (2, 2)],
               8: [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (3, 1), (3, 2)], 16: EQUAL_32[16]}
BALANCED_110 = {2: [(1, 14)], 3: [(1, 9), (2, 2)], 4: [(1, 6), (1, 14), (2, 8)]}
BALANCED_110_STL = {2: [(1, 14)], 3: [(1, 8), (2, 1)], 4: [(1, 6), (1, 14), (2, 8)]}


def units_of(table, n):
    return tuple(0 if s == 0 else 1 + n * (s - 1) + b for s, b in table)


@pytest.mark.parametrize("arch, n, split, dataset, tables", [
    ("resnet32", 5, "equal", "cifar10", EQUAL_32),
    ("resnet110", 18, "equal", "cifar10", EQUAL_110),
    ("resnet32", 5, "balanced", "cifar10", BALANCED_32),
    ("resnet110", 18, "balanced", "cifar10", BALANCED_110),
    ("resnet110", 18, "balanced", "svhn", BALANCED_110),
    ("resnet110", 18, "balanced", "STL-10", BALANCED_110_STL),
    ("resnet110", 18, "balanced", "cifar100", BALANCED_110),   # unknown datasets: CIFAR-10 table
])
def test_paper_tables(arch, n, split, dataset, tables):
    for k, table in tables.items():
        assert splits.paper_cuts(arch, k, split, dataset) == tuple(table)
        assert splits.paper_unit_cuts(arch, k, split, n, dataset) == units_of(table, n)


def test_build_uses_the_paper_table_and_labels_cuts():
    net = build("resnet32", 4, split="balanced", image_size=8)
    assert net.cuts == (3, 5, 8)
    description = net.describe()
    assert description["split_rule"] == "paper table"
    assert description["cut_labels"] == ["(1,2)", "(1,4)", "(2,2)"]


def test_dataset_hint_selects_the_stl10_balanced_table():
    net = build("resnet110", 3, split="balanced", dataset="stl10", image_size=8)
    assert net.cuts == units_of(BALANCED_110_STL[3], 18) == (9, 20)
    assert build("resnet110", 3, split="balanced", image_size=8).cuts == units_of(BALANCED_110[3], 18)


def test_unit_index_round_trip():
    for n in (3, 5, 18):
        for index in range(3 * n + 1):
            assert splits.unit_index(*splits.stage_block(index, n), n) == index
    assert splits.stage_block(0, 5) == (0, 0) and splits.stage_block(6, 5) == (2, 0)


def test_equal_rule_reproduces_every_resnet32_table():
    for k, table in EQUAL_32.items():
        assert splits.equal_cuts(16, k) == units_of(table, 5)


def test_equal_rule_gives_earlier_modules_the_extra_unit():
    assert splits.equal_cuts(10, 4) == (2, 5, 7)      # sizes 3, 3, 2, 2
    assert splits.equal_cuts(5, 1) == ()
    assert splits.equal_cuts(5, 5) == (0, 1, 2, 3)


def module_costs(costs, cuts):
    bounds = [0] + [c + 1 for c in cuts] + [len(costs)]
    return [sum(costs[a:b]) for a, b in zip(bounds, bounds[1:])]


def test_balanced_rule_is_exactly_min_max_then_most_even():
    rng = random.Random(0)
    for _ in range(30):
        costs = [rng.randint(1, 20) for _ in range(rng.randint(2, 9))]
        k = rng.randint(1, len(costs))
        options = [c for c in itertools.combinations(range(len(costs) - 1), k - 1)]
        best = min((max(module_costs(costs, c)), sum(m * m for m in module_costs(costs, c)))
                   for c in options)
        got = splits.balanced_cuts(costs, k)
        assert (max(module_costs(costs, got)), sum(m * m for m in module_costs(costs, got))) == best


def test_balanced_rule_on_resnet32_activation_sizes():
    costs = [16 * 32 * 32] * 6 + [32 * 16 * 16] * 5 + [64 * 8 * 8] * 5
    assert splits.balanced_cuts(costs, 2) == units_of(BALANCED_32[2], 5)
    assert splits.balanced_cuts(costs, 16) == units_of(BALANCED_32[16], 5)


def test_rules_are_used_and_named_where_no_table_exists():
    net = build("resnet20", 4, image_size=8)
    assert net.cuts == (2, 5, 7) and net.describe()["split_rule"] == "equal units rule"
    net = build("resnet20", 3, split="balanced", image_size=8)
    # per-image outputs: 4 units of 16*8*8=1024, 3 of 512, 3 of 256 (total 6400)
    assert net.cuts == (1, 3) and net.describe()["split_rule"] == "balanced activation bytes rule"
    assert build("resnet32", 5, image_size=8).describe()["split_rule"] == "equal units rule"


def test_every_k_builds_for_resnet32():
    for k in range(1, 17):
        net = build("resnet32", k, image_size=8)
        assert net.num_modules == k and len(net.cuts) == k - 1
        assert sorted(set(net.module_of_unit)) == list(range(k))


def test_bad_k_and_split_are_rejected():
    with pytest.raises(ValueError, match=r"num_modules=17 exceeds the number of units \(16\)"):
        build("resnet32", 17)
    with pytest.raises(ValueError, match=r"num_modules must be an int >= 1, got 0"):
        build("resnet32", 0)
    with pytest.raises(ValueError, match=r"split='memory' is unknown; expected one of \('equal', 'balanced'\)"):
        build("resnet32", 2, split="memory")
