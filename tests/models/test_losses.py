"""Cross-entropy wrapper and supervised contrastive loss (SupCon, single view)."""
import math

import pytest
import torch
import torch.nn.functional as F

from mi_analysis.models.losses import LOCAL_LOSSES, cross_entropy, supervised_contrastive


def reference_supcon(features, labels, temperature=0.07, base_temperature=0.07):
    """Khosla et al.'s formula written out anchor by anchor (all anchors must have positives)."""
    z = F.normalize(features.double(), dim=1)
    losses = []
    for i in range(len(z)):
        others = [a for a in range(len(z)) if a != i]
        log_denominator = torch.logsumexp(torch.stack([z[i] @ z[a] / temperature for a in others]), 0)
        positives = [p for p in others if labels[p] == labels[i]]
        if positives:
            mean = sum(z[i] @ z[p] / temperature - log_denominator for p in positives) / len(positives)
            losses.append(-(temperature / base_temperature) * mean)
    return torch.stack(losses).mean()


def test_hand_computed_case():
    # z0 = z2 = (1, 0), z1 = (0, 1); anchor 1 has no positive and is left out.
    # anchors 0 and 2: log p = 1/T - log(exp(0) + exp(1/T))
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 0])
    assert supervised_contrastive(features, labels, temperature=1.0, base_temperature=1.0).item() == \
        pytest.approx(math.log(1 + math.e) - 1, rel=1e-6)
    # T = 0.5, base 1: -(0.5) * (2 - log(1 + e^2))
    assert supervised_contrastive(features, labels, temperature=0.5, base_temperature=1.0).item() == \
        pytest.approx(0.5 * (math.log(1 + math.e ** 2) - 2), rel=1e-6)


def test_matches_the_formula_at_the_default_temperature():
    torch.manual_seed(0)
    features, labels = torch.randn(12, 5), torch.tensor([0, 1, 2, 3] * 3)
    expected = reference_supcon(features, labels)
    assert supervised_contrastive(features, labels).item() == pytest.approx(expected.item(), rel=1e-5)


def test_anchors_without_positives_are_excluded():
    torch.manual_seed(1)
    features, labels = torch.randn(7, 4), torch.tensor([0, 0, 1, 1, 2, 3, 4])
    expected = reference_supcon(features, labels)   # averages over anchors 0..3 only
    assert supervised_contrastive(features, labels).item() == pytest.approx(expected.item(), rel=1e-5)


def test_scale_invariant_because_features_are_normalised():
    torch.manual_seed(2)
    features, labels = torch.randn(8, 3), torch.arange(8) % 3
    assert supervised_contrastive(7.5 * features, labels).item() == \
        pytest.approx(supervised_contrastive(features, labels).item(), rel=1e-5)


@pytest.mark.parametrize("n", [1, 5])
def test_no_positives_gives_zero_and_finite_gradients(n):
    features = torch.randn(n, 4, requires_grad=True)
    loss = supervised_contrastive(features, torch.arange(n))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(features.grad).all() and torch.all(features.grad == 0)


def test_gradients_are_finite_with_identical_features():
    features = torch.ones(4, 3, requires_grad=True)
    loss = supervised_contrastive(features, torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(features.grad).all()


def test_float32_under_autocast():
    features = torch.randn(6, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = supervised_contrastive(features.bfloat16(), torch.arange(6) % 2)
    assert loss.dtype == torch.float32


def test_shape_errors():
    with pytest.raises(ValueError, match=r"features must be \(batch, dim\), got shape \(4,\)"):
        supervised_contrastive(torch.randn(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\), got \(3,\)"):
        supervised_contrastive(torch.randn(4, 2), torch.zeros(3, dtype=torch.long))


def test_cross_entropy_is_the_mean_in_nats():
    logits, labels = torch.zeros(3, 4), torch.tensor([0, 1, 2])
    assert cross_entropy(logits, labels).item() == pytest.approx(math.log(4))
    assert LOCAL_LOSSES == ("cross_entropy", "contrast")
