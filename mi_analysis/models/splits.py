"""Where a network is cut into K gradient-isolated modules (tables: InfoPro and ContSup; docs/models.md).

A cut is the flat index of the unit after which a module ends; K modules need
K-1 cuts in increasing order. For the CIFAR ResNets, unit 0 is the stem and
(stage s, block b) is unit 1 + n*(s-1) + b with n blocks per stage; the paper's
cut tables are written below in (stage, block) form, exactly as published.

Where no paper table exists (other depths, other K), a rule is used:
- "equal": every module gets floor(U/K) units and the first U mod K modules
  one more (U = number of units). This reproduces every ResNet-32 table of
  the paper; the paper's ResNet-110 tables put the extra units at the end
  instead, which is why tables win where they exist.
- "balanced": the cost of a module is the sum over its units of the number of
  output elements per image (a proxy for the activation bytes that E2E keeps
  for back-propagation). The cuts minimise the largest module cost; among
  the cuts that reach that minimum, the ones with the smallest sum of squared
  module costs are taken (the most even split); remaining ties are broken
  deterministically (earliest last cut).
"""
from __future__ import annotations

from typing import Sequence

from mi_analysis._util.checks import int_at_least, one_of

SPLITS = ("equal", "balanced")

PAPER_TABLE = "paper table"
EQUAL_RULE = "equal units rule"
BALANCED_RULE = "balanced activation bytes rule"

# arch -> K -> cuts as (stage, block), forward order
_EQUAL = {
    "resnet32": {
        2: ((2, 1),),
        3: ((1, 4), (2, 4)),
        4: ((1, 2), (2, 1), (3, 0)),
        8: ((1, 0), (1, 2), (1, 4), (2, 1), (2, 3), (3, 0), (3, 2)),
        16: ((0, 0), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 0), (2, 1), (2, 2), (2, 3),
             (2, 4), (3, 0), (3, 1), (3, 2), (3, 3)),
    },
    "resnet110": {
        2: ((2, 8),),
        3: ((1, 17), (2, 17)),
        4: ((1, 11), (2, 7), (3, 3)),
        8: ((1, 4), (1, 11), (2, 0), (2, 7), (2, 14), (3, 3), (3, 10)),
        16: ((1, 1), (1, 4), (1, 7), (1, 10), (1, 13), (1, 16), (2, 1), (2, 4), (2, 7), (2, 11),
             (2, 15), (3, 1), (3, 5), (3, 9), (3, 13)),
    },
}

# (arch, table dataset) -> K -> cuts as (stage, block)
_BALANCED = {
    ("resnet110", "cifar10"): {
        2: ((1, 14),),
        3: ((1, 9), (2, 2)),
        4: ((1, 6), (1, 14), (2, 8)),
    },
    ("resnet110", "stl10"): {
        2: ((1, 14),),
        3: ((1, 8), (2, 1)),
        4: ((1, 6), (1, 14), (2, 8)),
    },
    ("resnet32", "cifar10"): {
        2: ((1, 3),),
        4: ((1, 2), (1, 4), (2, 2)),
        8: ((1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (3, 1), (3, 2)),
        16: _EQUAL["resnet32"][16],
    },
}

# The ResNet-110 balanced tables were published for CIFAR-10 and SVHN (32x32) and
# for STL-10 (96x96); any other dataset uses the CIFAR-10 table.
_BALANCED_TABLE_OF = {"cifar10": "cifar10", "svhn": "cifar10", "stl10": "stl10"}


def dataset_key(dataset: str) -> str:
    """'STL-10', 'stl_10' and 'stl10' name the same table."""
    return dataset.lower().replace("-", "").replace("_", "")


def unit_index(stage: int, block: int, blocks_per_stage: int) -> int:
    """Flat unit index of (stage, block); the stem is (0, 0)."""
    return 0 if stage == 0 else 1 + blocks_per_stage * (stage - 1) + block


def stage_block(index: int, blocks_per_stage: int) -> tuple[int, int]:
    """Inverse of unit_index."""
    if index == 0:
        return (0, 0)
    return (1 + (index - 1) // blocks_per_stage, (index - 1) % blocks_per_stage)


def check_num_modules(num_modules: int, num_units: int) -> None:
    int_at_least(num_modules, "num_modules", 1)
    if num_modules > num_units:
        raise ValueError(f"num_modules={num_modules} exceeds the number of units ({num_units}); "
                         f"each module needs at least one unit")


def check_split(split: str) -> None:
    one_of(split, "split", SPLITS)


def equal_cuts(num_units: int, num_modules: int) -> tuple[int, ...]:
    """Equal units per module, the first (num_units mod K) modules one unit longer."""
    check_num_modules(num_modules, num_units)
    size, extra = divmod(num_units, num_modules)
    cuts, end = [], -1
    for k in range(num_modules - 1):
        end += size + (1 if k < extra else 0)
        cuts.append(end)
    return tuple(cuts)


def balanced_cuts(unit_costs: Sequence[int], num_modules: int) -> tuple[int, ...]:
    """Contiguous split of unit_costs into K non-empty modules, as even as possible.

    Minimises the largest module cost, then the sum of squared module costs.
    Exact dynamic programme, O(U^2 K) for U units.
    """
    costs = [int(c) for c in unit_costs]
    num_units = len(costs)
    check_num_modules(num_modules, num_units)
    prefix = [0]
    for c in costs:
        prefix.append(prefix[-1] + c)

    def best_split(objective, limit):
        # table[k][i]: best objective of splitting units 0..i-1 into k modules (inf: impossible)
        inf = float("inf")
        table = [[inf] * (num_units + 1) for _ in range(num_modules + 1)]
        choice = [[0] * (num_units + 1) for _ in range(num_modules + 1)]
        table[0][0] = 0
        for k in range(1, num_modules + 1):
            for i in range(k, num_units - (num_modules - k) + 1):
                for j in range(k - 1, i):  # last module = units j..i-1
                    module_cost = prefix[i] - prefix[j]
                    if module_cost > limit or table[k - 1][j] == inf:
                        continue
                    value = objective(table[k - 1][j], module_cost)
                    if value < table[k][i]:
                        table[k][i], choice[k][i] = value, j
        cuts, i = [], num_units
        for k in range(num_modules, 1, -1):
            i = choice[k][i]
            cuts.append(i - 1)
        return table[num_modules][num_units], tuple(reversed(cuts))

    largest, _ = best_split(max, float("inf"))
    _, cuts = best_split(lambda acc, c: acc + c * c, largest)
    return cuts


def rule_cuts(unit_costs: Sequence[int], num_modules: int, split: str) -> tuple[tuple[int, ...], str]:
    """(cuts, rule name) by the documented rule of `split` for units of the given costs."""
    check_split(split)
    if split == "equal":
        return equal_cuts(len(unit_costs), num_modules), EQUAL_RULE
    return balanced_cuts(unit_costs, num_modules), BALANCED_RULE


def paper_cuts(arch: str, num_modules: int, split: str, dataset: str = "cifar10"):
    """The paper's cuts as (stage, block) pairs, or None when the paper has no table."""
    check_split(split)
    if split == "equal":
        return _EQUAL.get(arch, {}).get(num_modules)
    table = _BALANCED_TABLE_OF.get(dataset_key(dataset), "cifar10")
    return _BALANCED.get((arch, table), {}).get(num_modules)


def paper_unit_cuts(arch: str, num_modules: int, split: str, blocks_per_stage: int,
                    dataset: str = "cifar10") -> tuple[int, ...] | None:
    """The paper's cuts as unit indices, or None when the paper has no table."""
    table = paper_cuts(arch, num_modules, split, dataset)
    return None if table is None else tuple(unit_index(s, b, blocks_per_stage) for s, b in table)
