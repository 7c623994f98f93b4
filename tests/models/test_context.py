"""Context supply: mode table, encoders actually built, counts, recomputation."""
import pytest
import torch
from torch import nn

from mi_analysis.models import CONTEXT_MODES, build
from mi_analysis.models.context import ContextSupply, context_mode


def test_mode_table():
    assert CONTEXT_MODES == ("R0", "E", "R1", "R1E", "R2", "R2E", "R4", "R4E", "R8", "R8E", "R16", "R16E")
    assert (context_mode("R1E", 4).has_E, context_mode("R1E", 4).n_res) == (True, 1)
    assert (context_mode("R8", 8).has_E, context_mode("R8", 8).n_res) == (False, 8)
    assert (context_mode("E", 2).has_E, context_mode("E", 2).n_res) == (True, 0)


@pytest.mark.parametrize("mode, expected", [("R0", 0), ("E", 62_232), ("R1", 21_808), ("R1E", 83_944)])
def test_reference_context_counts_resnet32_k16(mode, expected):
    assert build("resnet32", 16, mode).parameter_counts()["context"] == expected


def keys(mode, k):
    net = build("resnet20", k, mode, image_size=8)
    return sorted(net.context.encoders)


def test_only_used_encoders_are_built():
    assert keys("R0", 4) == []
    assert keys("E", 3) == ["cut0_E", "cut1_E"]
    assert keys("R1", 3) == ["cut0_m0", "cut1_m1"]
    assert keys("R1E", 3) == ["cut0_E", "cut1_E", "cut1_m1"]     # no residual encoder of the image
    assert keys("R2", 4) == ["cut0_m0", "cut1_m0", "cut1_m1", "cut2_m1", "cut2_m2"]
    assert keys("R2E", 4) == ["cut0_E", "cut1_E", "cut1_m1", "cut2_E", "cut2_m1", "cut2_m2"]
    # R4 at K=4 reaches back to the image at the last cut and no further
    assert keys("R4", 4) == ["cut0_m0", "cut1_m0", "cut1_m1", "cut2_m0", "cut2_m1", "cut2_m2"]


def test_encoder_shapes_match_the_cut():
    net = build("resnet20", 4, "R1E", image_size=16)
    x = torch.randn(2, 3, 16, 16)
    e = net.context.encoders["cut1_E"]          # cut 1 is after unit 5, (32, 8, 8)
    convs = [m for m in e.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.bias is not None) for c in convs] == [(3, 12, True), (12, 32, True)]
    assert e(x).shape == (2, 32, 8, 8)
    r = net.context.encoders["cut1_m1"]         # reads module 1's input, (16, 16, 16)
    assert r(torch.randn(2, 16, 16, 16)).shape == (2, 32, 8, 8)


def test_mode_errors():
    with pytest.raises(ValueError, match=r"context='R3' is unknown; expected one of \('R0', 'E'"):
        build("resnet20", 4, "R3")
    with pytest.raises(ValueError, match=r"context='E' needs num_modules >= 2"):
        build("resnet20", 1, "E")
    with pytest.raises(ValueError, match=r"context='R8' looks back over 8 module inputs but num_modules=4.*'R4E'\)"):
        build("resnet20", 4, "R8")
    assert build("resnet20", 1, "R0").parameter_counts()["context"] == 0


def test_only_needed_module_inputs_are_kept():
    supply = ContextSupply("R2", (3, 8, 8), [(4, 8, 8)] * 5)
    sources = supply.start(torch.zeros(1, 3, 8, 8))
    sizes = []
    for k in range(5):
        supply(k, torch.zeros(1, 4, 8, 8), sources)
        sizes.append(sorted(sources))
    assert sizes == [[0, 1], [1, 2], [2, 3], [3, 4], []]
    assert ContextSupply("R0", (3, 8, 8), [(4, 8, 8)]).start(torch.zeros(1, 3, 8, 8)) == {}


def vector_supply():
    return ContextSupply("R1E", (1, 4, 4), [(6,), (5,)])


def test_vector_activations_use_linear_encoders():
    supply = vector_supply()
    e0 = supply.encoders["cut0_E"]
    assert [type(m).__name__ for m in e0] == ["Flatten", "Linear", "BatchNorm1d", "ReLU",
                                              "Linear", "BatchNorm1d", "ReLU"]
    assert e0[1].in_features == 16 and e0[4].out_features == 6
    r = supply.encoders["cut1_m1"]
    assert [type(m).__name__ for m in r] == ["Linear", "BatchNorm1d", "ReLU"]
    sources = supply.start(torch.randn(3, 1, 4, 4))
    assert supply(0, torch.randn(3, 6), sources).shape == (3, 6)
    with pytest.raises(ValueError, match=r"cannot make a \(C, H, W\) tensor"):
        ContextSupply("R1", (8,), [(4, 2, 2)])


def grads_and_state(net, x, y):
    net.zero_grad(set_to_none=True)
    out = net.training_step(x, y)
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    return out, grads, {k: v.clone() for k, v in net.state_dict().items()}


def saved_bytes(net, x, y):
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net.training_step(x, y)
    return total[0]


def test_recompute_context_gives_identical_gradients_and_saves_memory():
    torch.manual_seed(0)
    plain = build("resnet20", 4, "R1E", image_size=16)
    recomputed = build("resnet20", 4, "R1E", image_size=16, recompute_context=True)
    recomputed.load_state_dict(plain.state_dict())
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    out_a, grads_a, state_a = grads_and_state(plain, x, y)
    out_b, grads_b, state_b = grads_and_state(recomputed, x, y)
    torch.testing.assert_close(out_a["loss"], out_b["loss"], rtol=0, atol=0)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-6, atol=1e-7, msg=name)
    for name in state_a:   # BN running statistics updated once, not twice
        torch.testing.assert_close(state_a[name], state_b[name], rtol=0, atol=0, msg=name)
    assert saved_bytes(recomputed, x, y) < saved_bytes(plain, x, y)
