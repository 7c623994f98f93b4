import math
from collections import namedtuple

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mi_analysis._util import threads as threads_policy
from mi_analysis.capture import (
    PCA,
    AvgPool,
    Captured,
    RandomProjection,
    Reduction,
    UnknownPointError,
    capture,
    fit_reducers,
    make_reduction,
)


def linear_model():
    """x (3,) -> Linear -> ReLU -> Linear, with integer weights so every activation is exact."""
    torch.manual_seed(0)
    first = nn.Linear(3, 2)
    second = nn.Linear(2, 1)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, -1.0, 2.0], [0.0, 3.0, -1.0]]))
        first.bias.copy_(torch.tensor([1.0, -2.0]))
        second.weight.copy_(torch.tensor([[2.0, -1.0]]))
        second.bias.copy_(torch.tensor([0.5]))
    return nn.Sequential(first, nn.ReLU(), second)


def conv_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 5),
    )


def assert_no_hooks(model):
    for module in model.modules():
        assert not module._forward_hooks
        assert not module._forward_pre_hooks


# ---------------------------------------------------------------- exact values


def test_linear_model_activations_match_hand_computation():
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.0, 1.0, 0.0]])
    acts = capture(linear_model(), x, ["0", "1", "2"])
    first = torch.tensor([[1 - 2 + 6 + 1, 6 - 3 - 2], [1, -2], [-1 - 1 + 1, 3 - 2]], dtype=torch.float32)
    hidden = first.clamp_min(0)
    out = hidden @ torch.tensor([[2.0], [-1.0]]) + 0.5
    assert torch.equal(acts["0"], first)
    assert torch.equal(acts["1"], hidden)
    assert torch.equal(acts["2"], out)
    assert acts.points == ("0", "1", "2")
    assert acts.labels is None
    assert acts.shapes == {"0": (2,), "1": (2,), "2": (1,)}
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in acts.values())


def test_captured_is_a_dict_in_point_order():
    acts = capture(linear_model(), torch.zeros(4, 3), ["2", "0"])
    assert isinstance(acts, dict) and isinstance(acts, Captured)
    assert list(acts) == ["2", "0"] and acts.points == ("2", "0") and acts.n == 4


def test_later_inplace_op_does_not_change_recorded_values():
    conv = nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(-1.0)
    model = nn.Sequential(conv, nn.ReLU(inplace=True))
    x = torch.ones(2, 1, 2, 2)
    acts = capture(model, x, ["0"])
    assert torch.equal(acts["0"], -torch.ones(2, 4))


def test_avgpool_known_answer():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)  # rows 0..3, 4..7, 8..11, 12..15
    acts = capture(nn.Sequential(nn.Identity()), x, ["0"], reduce=("avgpool", 2))
    assert acts["0"].tolist() == [[2.5, 4.5, 10.5, 12.5]]
    assert AvgPool(1).transform(x).flatten().tolist() == [7.5]
    sequence = torch.arange(8.0).reshape(1, 2, 4)  # (B, C, L)
    assert torch.equal(AvgPool(2).transform(sequence), torch.tensor([[[0.5, 2.5], [4.5, 6.5]]]))


def test_avgpool_keeps_small_maps_and_flat_vectors():
    small = torch.randn(2, 3, 2, 2)
    assert torch.equal(AvgPool(4).transform(small), small)
    flat = torch.randn(2, 7)
    assert torch.equal(AvgPool(4).transform(flat), flat)
    with pytest.raises(ValueError, match="avgpool expects"):
        AvgPool(2).transform(torch.randn(1, 1, 2, 2, 2))


def test_projection_matrix_is_seeded_gaussian_scaled_by_sqrt_dim():
    projection = RandomProjection(5, seed=3)
    expected = torch.randn(12, 5, generator=torch.Generator().manual_seed(3)) / math.sqrt(5)
    assert torch.equal(projection.matrix(12), expected)
    x = torch.randn(4, 3, 2, 2)
    assert torch.allclose(projection.transform(x), x.flatten(1) @ expected)


def test_projection_is_deterministic_per_seed_and_independent_of_batching():
    model = nn.Sequential(nn.Identity())
    x = torch.randn(50, 2, 4, 4)
    a = capture(model, x, ["0"], reduce=("project", 6, 1), batch_size=7)["0"]
    b = capture(model, x, ["0"], reduce=("project", 6, 1), batch_size=50)["0"]
    c = capture(model, x, ["0"], reduce=("project", 6, 2))["0"]
    assert a.shape == (50, 6)
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c)


def test_projection_preserves_squared_norm_on_average():
    x = torch.randn(400, 64)
    y = RandomProjection(512, seed=0).transform(x)
    ratio = (y.pow(2).sum(1) / x.pow(2).sum(1)).mean()
    assert ratio == pytest.approx(1.0, abs=0.05)


def test_make_reduction_parses_and_composes_specs():
    assert make_reduction(None).steps == ()
    pool = AvgPool(2)
    assert make_reduction(pool).steps == (pool,)
    composed = make_reduction([("avgpool", 4), [("project", 8, 1), ("pca", 3)]])
    assert isinstance(composed, Reduction)
    assert [type(step) for step in composed.steps] == [AvgPool, RandomProjection, PCA]
    assert composed.steps[1].seed == 1 and composed.fit_start == 2 and not composed.fitted
    assert make_reduction(("project", 8)).fit_start is None


def test_composed_reduction_equals_steps_in_order():
    x = torch.randn(8, 3, 8, 8)
    acts = capture(nn.Sequential(nn.Identity()), x, ["0"], reduce=[("avgpool", 2), ("project", 4, 5)])
    expected = RandomProjection(4, seed=5).transform(AvgPool(2).transform(x))
    assert torch.allclose(acts["0"], expected, atol=1e-6)


# ---------------------------------------------------------------- PCA


def low_rank_data(m, d, variances, seed=0):
    """x (m, d) = z @ v.T + offset with orthonormal v (d, r) and centred orthogonal columns of z
    whose sample variances (ddof=1) are exactly `variances`."""
    g = torch.Generator().manual_seed(seed)
    r = len(variances)
    z = torch.randn(m, r, generator=g, dtype=torch.float64)
    z = torch.linalg.qr(z - z.mean(0)).Q  # orthonormal and still centred
    z = z * torch.tensor(variances, dtype=torch.float64).mul(m - 1).sqrt()
    v = torch.linalg.qr(torch.randn(d, r, generator=g, dtype=torch.float64)).Q
    offset = torch.randn(d, generator=g, dtype=torch.float64)
    return (z @ v.T + offset), z, v, offset


@pytest.mark.parametrize("m, d", [(200, 10), (12, 40)])  # covariance path and Gram path
def test_pca_recovers_known_variances_and_components(m, d):
    variances = [9.0, 4.0, 1.0]
    x, z, v, offset = low_rank_data(m, d, variances)
    pca = PCA(2).fit(x)
    assert pca.explained_variance_.tolist() == pytest.approx([9.0, 4.0], rel=1e-5)
    assert pca.explained_variance_ratio_.tolist() == pytest.approx([9 / 14, 4 / 14], rel=1e-5)
    assert torch.allclose(pca.mean_.double(), offset, atol=1e-5)
    # components are the first two directions up to sign; scores are z up to the same sign
    signs = torch.sign((pca.components_.double() * v[:, :2].T).sum(1))
    assert torch.allclose(pca.components_.double(), v[:, :2].T * signs[:, None], atol=1e-5)
    assert torch.allclose(pca.transform(x.float()).double(), z[:, :2] * signs, atol=1e-4)
    full = PCA(3).fit(x)
    assert float(full.explained_variance_ratio_.sum()) == pytest.approx(1.0, rel=1e-6)


def test_pca_sign_convention_is_deterministic():
    x, *_ = low_rank_data(100, 6, [3.0, 2.0, 1.0])
    pca = PCA(3).fit(x)
    largest = pca.components_.abs().argmax(1)
    assert (pca.components_.gather(1, largest[:, None]) > 0).all()
    assert torch.equal(PCA(3).fit(x).components_, pca.components_)


def test_pca_errors():
    x, *_ = low_rank_data(50, 8, [2.0, 1.0])
    with pytest.raises(ValueError, match="rank 2"):
        PCA(3).fit(x)
    with pytest.raises(ValueError, match="fitting samples"):
        PCA(5).fit(x[:4])
    with pytest.raises(ValueError, match="not fitted"):
        PCA(2).transform(x)
    with pytest.raises(ValueError, match="fitted on 8-dim"):
        PCA(2).fit(x).transform(torch.randn(3, 9))


def test_fit_reducers_fits_on_training_data_and_capture_applies_it_to_probe_data():
    model = nn.Sequential(nn.Identity(), nn.Flatten())
    train, *_ = low_rank_data(300, 4 * 4 * 4, [5.0, 2.0, 1.0], seed=1)
    train = train.float().reshape(300, 4, 4, 4)
    probe = torch.randn(20, 4, 4, 4)
    spec = [("avgpool", 2), ("pca", 3)]
    reducers = fit_reducers(model, train, ["0"], spec, batch_size=64, max_samples=250)
    # the same fit done by hand on the first 250 training samples
    expected = PCA(3).fit(AvgPool(2).transform(train[:250]))
    pca = reducers["0"].steps[1]
    assert torch.allclose(pca.components_, expected.components_, atol=1e-5)
    acts = capture(model, probe, ["0"], reduce=reducers)
    assert torch.allclose(acts["0"], expected.transform(AvgPool(2).transform(probe)), atol=1e-4)
    assert acts["0"].shape == (20, 3)
    assert isinstance(spec[1], tuple)  # the spec itself is untouched


def test_fit_reducers_leaves_points_without_pca_alone_and_does_not_mutate_given_reduction():
    model = nn.Sequential(nn.Identity(), nn.Identity())
    given = make_reduction(("pca", 2))
    reducers = fit_reducers(model, torch.randn(30, 5), ["0", "1"], {"0": given})
    assert reducers["0"].fitted and not given.fitted
    assert reducers["1"].steps == ()


def test_capture_refuses_unfitted_pca():
    with pytest.raises(ValueError, match="fit_reducers"):
        capture(nn.Sequential(nn.Identity()), torch.randn(5, 3), ["0"], reduce=("pca", 2))


# ---------------------------------------------------------------- memory


def test_per_point_storage_is_n_times_reduced_dim():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
    n = 300
    reduce = {"0": ("avgpool", 2), "1": ("project", 10)}
    acts = capture(model, torch.randn(n, 3, 32, 32), ["0", "1"], reduce, batch_size=64)
    assert acts.shapes == {"0": (16, 32, 32), "1": (16, 32, 32)}
    assert acts["0"].shape == (n, 16 * 2 * 2) and acts["1"].shape == (n, 10)
    for tensor in acts.values():
        assert tensor.untyped_storage().nbytes() == tensor.numel() * 4


# ---------------------------------------------------------------- model state


def test_capture_does_not_change_model_output_and_restores_training_flags():
    model = conv_model()
    model.train()
    model[1].eval()  # a mixed state that model.train(True) alone would not restore
    x = torch.randn(10, 3, 8, 8)
    model.eval()
    with torch.no_grad():
        before = model(x)
    model.train()
    model[1].eval()
    flags = [m.training for m in model.modules()]
    seen = {}
    model[5].register_forward_hook(lambda mod, inp, out: seen.update(out=out.clone(), training=mod.training))
    acts = capture(model, x, ["0", "5"])
    assert seen["training"] is False
    assert torch.equal(seen["out"], before)  # same output while capturing
    assert torch.equal(acts["5"], before)
    assert [m.training for m in model.modules()] == flags
    assert len(model[5]._forward_hooks) == 1 and not model[0]._forward_hooks  # only the test's own hook
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_hooks_removed_and_flags_restored_after_forward_raises():
    class Explodes(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("boom")
            return x

    model = nn.Sequential(nn.Linear(3, 3), Explodes())
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        capture(model, torch.randn(8, 3), ["0", "1"], batch_size=4)
    assert_no_hooks(model)
    assert all(m.training for m in model.modules())


def test_hooks_removed_after_error_inside_hook():
    model = nn.Sequential(nn.Identity())
    with pytest.raises(ValueError, match="avgpool expects"):
        capture(model, torch.randn(4, 3, 1, 1, 1), ["0"], reduce=("avgpool", 2))
    assert_no_hooks(model)


def test_no_gradients_recorded():
    model = linear_model()
    acts = capture(model, torch.randn(4, 3), ["0"])
    assert not acts["0"].requires_grad
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------- threads


class ThreadCounter(nn.Module):
    """Records torch's intra-op thread count in each forward; raises on a batch of size `fail_on`."""

    def __init__(self, fail_on=None):
        super().__init__()
        self.layer = nn.Linear(3, 2)
        self.seen, self.fail_on = [], fail_on

    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        if len(x) == self.fail_on:
            raise RuntimeError("forward failed")
        return self.layer(x)


def test_forward_runs_under_the_threads_asked_for_and_the_callers_count_is_restored(two_threads, monkeypatch):
    model = ThreadCounter()
    capture(model, torch.randn(6, 3), ["layer"], batch_size=2, threads=1)
    assert model.seen == [1, 1, 1] and torch.get_num_threads() == 2
    # the default is "auto": the cores other processes leave free, here none of them, so 1 thread
    monkeypatch.setattr(threads_policy, "busy_elsewhere", lambda: 10**6)
    model.seen.clear()
    fit_reducers(model, torch.randn(4, 3), ["layer"], ("pca", 1), batch_size=2)
    capture(model, torch.randn(4, 3), ["layer"], batch_size=2)
    assert model.seen == [1, 1, 1, 1] and torch.get_num_threads() == 2
    failing = ThreadCounter(fail_on=1)
    with pytest.raises(RuntimeError, match="forward failed"):
        capture(failing, torch.randn(3, 3), ["layer"], batch_size=2, threads=1)
    assert failing.seen == [1, 1] and torch.get_num_threads() == 2


# ---------------------------------------------------------------- data formats


def test_data_formats_give_the_same_activations_and_labels():
    model = linear_model()
    x = torch.randn(10, 3)
    y = torch.arange(10)
    expected = capture(model, x, ["1"])["1"]
    dataset = TensorDataset(x, y)
    forms = {
        "tuple": (x, y),
        "dataloader": DataLoader(dataset, batch_size=3),
        "list of batches": [(x[:4], y[:4]), (x[4:], y[4:])],
        "generator": ((x[i : i + 2], y[i : i + 2]) for i in range(0, 10, 2)),
        "numpy": (x.numpy().astype(np.float64), y.numpy()),
    }
    for name, data in forms.items():
        acts = capture(model, data, ["1"], batch_size=4)
        assert torch.allclose(acts["1"], expected), name
        assert torch.equal(acts.labels, y), name
    unlabelled = capture(model, [x[:3], x[3:]], ["1"])
    assert torch.allclose(unlabelled["1"], expected) and unlabelled.labels is None
    assert torch.allclose(capture(model, x.numpy(), ["1"])["1"], expected)


def test_max_samples_cuts_the_last_batch_and_reads_no_further():
    model = linear_model()
    x = torch.randn(20, 3)
    y = torch.arange(20)
    pulled = []

    def batches():
        for i in range(0, 20, 4):
            pulled.append(i)
            yield x[i : i + 4], y[i : i + 4]

    acts = capture(model, batches(), ["0"], max_samples=6)
    assert acts["0"].shape == (6, 2) and torch.equal(acts.labels, y[:6])
    assert pulled == [0, 4]
    assert capture(model, x, ["0"], max_samples=8, batch_size=8).n == 8


def test_captures_first_tensor_of_tuple_output():
    class Pair(nn.Module):
        def forward(self, x):
            return x * 2, x * 3

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair = Pair()

        def forward(self, x):
            a, b = self.pair(x)
            return a + b

    acts = capture(Net(), torch.ones(2, 3), ["pair"])
    assert torch.equal(acts["pair"], torch.full((2, 3), 2.0))


# ---------------------------------------------------------------- errors


def test_unknown_point_lists_valid_names():
    model = linear_model()
    with pytest.raises(UnknownPointError, match=r"valid names: \['0', '1', '2'\]"):
        capture(model, torch.randn(2, 3), ["0", "nope"])
    with pytest.raises(KeyError):
        capture(model, torch.randn(2, 3), ["nope"])
    with pytest.raises(ValueError, match="nope"):
        capture(model, torch.randn(2, 3), ["nope"])


def test_plain_module_needs_points():
    with pytest.raises(ValueError, match=r"points is required.*\['0', '1', '2'\]"):
        capture(linear_model(), torch.randn(2, 3))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"points": []}, ValueError, "points is empty"),
        ({"points": ["0", "0"]}, ValueError, "more than once"),
        ({"points": ["0"], "batch_size": 0}, ValueError, "batch_size"),
        ({"points": ["0"], "max_samples": -1}, ValueError, "max_samples"),
        ({"points": ["0"], "reduce": ("median", 2)}, ValueError, "unknown reduction 'median'"),
        ({"points": ["0"], "reduce": 3}, TypeError, "reduce must be"),
        ({"points": ["0"], "reduce": {"2": ("avgpool", 2)}}, ValueError, "not captured"),
        ({"points": ["0"], "reduce": ("project", 0)}, ValueError, "project dim"),
        ({"points": ["0"], "threads": 0}, ValueError, r"^threads must be 'auto' or an int >= 1, got 0$"),
        ({"points": ["0"], "threads": "all"}, ValueError, r"^threads must be 'auto' or an int >= 1, got 'all'$"),
    ],
)
def test_argument_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        capture(linear_model(), torch.randn(2, 3), **kwargs)


def test_fit_reducers_refuses_a_bad_threads_value_also_with_nothing_to_fit():
    with pytest.raises(ValueError, match=r"^threads must be 'auto' or an int >= 1, got 1.5$"):
        fit_reducers(linear_model(), torch.randn(2, 3), ["0"], threads=1.5)


def test_data_errors():
    model = linear_model()
    with pytest.raises(TypeError, match="data must be"):
        capture(model, 5, ["0"])
    with pytest.raises(TypeError, match="each batch"):
        capture(model, [{"x": torch.randn(2, 3)}], ["0"])
    with pytest.raises(ValueError, match="2 labels"):
        capture(model, (torch.randn(3, 3), torch.arange(2)), ["0"])
    with pytest.raises(ValueError, match="some batches"):
        capture(model, [(torch.randn(2, 3), torch.arange(2)), torch.randn(2, 3)], ["0"])
    with pytest.raises(ValueError, match="no samples"):
        capture(model, [], ["0"])


def test_point_not_reached_or_reached_twice():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(2, 2)
            self.unused = nn.Linear(2, 2)

        def forward(self, x):
            return self.used(self.used(x))

    model = Branchy()
    with pytest.raises(RuntimeError, match="not reached"):
        capture(model, torch.randn(2, 2), ["unused"])
    with pytest.raises(RuntimeError, match="more than once"):
        capture(model, torch.randn(2, 2), ["used"])
    assert_no_hooks(model)


# ---------------------------------------------------------------- LocalNet


OldTap = namedtuple("OldTap", "name depth module unit where target")


class TwoModuleNet(nn.Module):
    """Implements what LocalNet promises its probe points: module 1's input is h0 + context(x)."""

    def __init__(self):
        super().__init__()
        self.units = nn.ModuleList([nn.Linear(3, 4), nn.Linear(4, 2)])
        self.context = nn.Linear(3, 4)

    def forward(self, x):
        h = self.units[0](x)
        return self.units[1](h.detach() + self.context(x))

    @property
    def probe_points(self):
        return ("u0", "m1.in", "u1")

    def probe_point(self, name):
        table = {
            "u0": OldTap("u0", 0, 0, 0, "output", self.units[0]),
            "m1.in": OldTap("m1.in", 1, 1, 1, "input", self.units[1]),
            "u1": OldTap("u1", 2, 1, 1, "output", self.units[1]),
        }
        if name not in table:
            raise KeyError(f"unknown tap {name!r}; valid: {list(table)}")
        return table[name]


def test_earlier_tap_protocol_default_points_and_input_hook():
    torch.manual_seed(0)
    net = TwoModuleNet()
    x = torch.randn(5, 3)
    with pytest.warns(DeprecationWarning, match="declares probe_points/probe_point; name them taps/tap"):
        acts = capture(net, x)
    assert acts.points == ("u0", "m1.in", "u1")
    with torch.no_grad():
        h0 = net.units[0](x)
        m1_in = h0 + net.context(x)
        out = net(x)
    assert torch.allclose(acts["u0"], h0)
    assert torch.allclose(acts["m1.in"], m1_in)
    assert torch.allclose(acts["u1"], out)
    assert_no_hooks(net)
    with pytest.raises(UnknownPointError, match=r"valid names: \['u0', 'm1.in', 'u1'\]"), pytest.warns(DeprecationWarning):
        capture(net, x, ["units.0"])  # a LocalNet is addressed by tap names only


def test_localnet_taps_capture():
    try:
        from mi_analysis.models import build
    except ImportError as missing:  # the models package is written in parallel
        pytest.skip(f"mi_analysis.models.build not available: {missing}")
    torch.manual_seed(0)
    net = build("resnet20", 4, context="R1E", image_size=8)
    x = torch.randn(6, 3, 8, 8)
    y = torch.arange(6)
    net.eval()
    with torch.no_grad():
        before = net(x)
    net.train()
    acts = capture(net, (x, y), reduce=("avgpool", 2), batch_size=4)
    assert acts.points == tuple(net.taps)
    assert torch.equal(acts.labels, y)
    assert net.training
    assert_no_hooks(net)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), before)
    for name in net.taps:
        point = net.tap(name)
        channels = acts.shapes[name][0]
        assert acts[name].shape == (6, channels * min(2, acts.shapes[name][1]) ** 2), name
        if point.where == "input":  # "m{k}.in": what actually entered the first unit of module k
            seen = {}
            handle = point.target.register_forward_pre_hook(lambda mod, args: seen.update(x=args[0]))
            with torch.no_grad():
                net(x)
            handle.remove()
            assert torch.allclose(acts[name], AvgPool(2).transform(seen["x"]).flatten(1), atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_runs_forward_there_and_moves_the_model_back():
    model = conv_model()
    x = torch.randn(12, 3, 8, 8)
    on_cpu = capture(model, x, ["0", "5"], {"0": [("avgpool", 2), ("project", 5)]})
    on_gpu = capture(model, x, ["0", "5"], {"0": [("avgpool", 2), ("project", 5)]}, device="cuda")
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(t.device.type == "cpu" for t in on_gpu.values())
    for name in on_cpu:
        assert torch.allclose(on_cpu[name], on_gpu[name], atol=1e-4), name
