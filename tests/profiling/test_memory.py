import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from mi_analysis.profiling.memory import LiveTensorMeter, SavedTensorMeter, optimizer_state_bytes, tensor_bytes
from mi_analysis.models import LocalNet
from mi_analysis.profiling.costs import training_step_memory


F32 = 4  # bytes per float32


def _chain(widths, seed=0):
    torch.manual_seed(seed)
    return torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))


def test_linear_chain_known_answer():
    """Linear saves its input; ReLU saves its output, which is the next Linear's input (one storage)."""
    layers = _chain([10, 20, 30, 5])
    batch = 8
    x = torch.randn(batch, 10)
    with SavedTensorMeter(exclude=layers.parameters()) as meter:
        h = x
        for i, layer in enumerate(layers):
            h = layer(h)
            if i < len(layers) - 1:
                h = torch.relu(h)
        during = meter.current_bytes
        h.sum().backward()
    expected = F32 * batch * (10 + 20 + 30)  # float32 input, relu(20), relu(30); parameters excluded
    assert during == expected
    assert meter.peak_bytes == expected
    assert meter.current_bytes == 0  # everything released by backward


def test_conv_batchnorm_relu_known_answer():
    """conv saves its input, BN its input (the conv output) and per-channel mean and 1/std, ReLU its output."""
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
    batch, height, width = 2, 6, 6
    with SavedTensorMeter(exclude=[*block.parameters(), *block.buffers()]) as meter:
        out = block(torch.randn(batch, 3, height, width))
        during = meter.current_bytes
        out.sum().backward()
    assert during == F32 * batch * height * width * (3 + 8 + 8) + F32 * 2 * 8
    assert meter.peak_bytes == during and meter.current_bytes == 0


def test_shared_storage_is_counted_once():
    """Two views of one tensor, both saved (by a product), cost the tensor's storage once."""
    h = torch.randn(4, 10, requires_grad=True) * 1.0  # a non-leaf (4, 10) float32 tensor
    with SavedTensorMeter() as meter:
        product = h[:, :5] * h[:, 5:]  # mul saves both operands: two views of h's storage
        square = h * h  # saves h twice more
    assert meter.current_bytes == F32 * 4 * 10
    del product, square


def test_parameters_are_excluded_only_when_asked():
    layer = nn.Linear(10, 4)
    x = torch.randn(3, 10, requires_grad=True)  # so the weight is saved, for x's gradient
    with SavedTensorMeter(exclude=layer.parameters()) as without_params:
        out_a = layer(x)
    with SavedTensorMeter() as with_params:
        out_b = layer(x)
    assert without_params.current_bytes == F32 * 3 * 10  # the input only
    assert with_params.current_bytes == F32 * 3 * 10 + F32 * 10 * 4  # + the weight
    del out_a, out_b


def test_release_after_backward_and_retain_graph_keeps():
    layers = _chain([6, 6])
    x = torch.randn(5, 6)
    with SavedTensorMeter(exclude=layers.parameters()) as meter:
        loss = torch.relu(layers[0](x)).sum()
        loss.backward(retain_graph=True)
        kept = meter.current_bytes
        del loss  # dropping the graph releases what it saved
    assert kept == F32 * 5 * 6 * 2 and meter.current_bytes == 0


def test_local_backward_frees_before_next_module():
    """Backpropagating each block right after its forward keeps the peak at the largest block."""
    layers = _chain([16, 64, 64, 64, 64])
    x = torch.randn(32, 16)

    def run(local: bool) -> int:
        with SavedTensorMeter(exclude=layers.parameters()) as meter:
            h = x
            for layer in layers:
                h = torch.relu(layer(h.detach() if local else h))
                if local:
                    h.sum().backward()
            if not local:
                h.sum().backward()
        return meter.peak_bytes

    e2e, local = run(False), run(True)
    per_block_input = F32 * 32 * 64
    assert e2e == F32 * 32 * 16 + 4 * per_block_input  # inputs of all layers + last relu output
    assert local == 2 * per_block_input  # one block's input and its relu output at a time


def test_windows_split_one_measurement():
    layers = _chain([8, 8])
    with SavedTensorMeter(exclude=layers.parameters()) as meter:
        big = torch.relu(layers[0](torch.randn(10, 8)))
        assert meter.start_window() == F32 * 10 * 8 * 2  # alive when the window starts
        small = torch.relu(layers[0](torch.randn(1, 8)))
    assert meter.window_peak_bytes == F32 * 10 * 8 * 2 + F32 * 1 * 8 * 2
    assert meter.peak_bytes == meter.window_peak_bytes
    del big, small


def test_live_meter_known_answer_and_release():
    x, w = torch.randn(5, 7), torch.randn(7, 3)  # created before the meter: not counted
    with LiveTensorMeter() as meter:
        y = torch.relu(x @ w)  # the product (5, 3) and the relu output (5, 3) exist together
        after = meter.current_bytes
        del y
        released = meter.current_bytes
        views = (x.view(-1), x.t(), x[1:])  # views make no new memory
        x.add_(1.0)  # neither does an in-place operation
        untouched = meter.current_bytes
    assert meter.peak_bytes == 2 * F32 * 5 * 3
    assert after == F32 * 5 * 3 and released == 0 and untouched == 0
    del views


def test_checkpoint_is_a_blind_spot_of_the_saved_meter_not_of_the_live_meter():
    """Inside torch.utils.checkpoint only the region's input is saved; the activations are
    recomputed during backward, where only the live meter sees them."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU()).requires_grad_(False)
    x = torch.randn(4, 16, requires_grad=True)

    def measure(use_checkpoint: bool):
        with SavedTensorMeter(exclude=net.parameters()) as saved, LiveTensorMeter() as live:
            h = checkpoint(net, x, use_reentrant=False) if use_checkpoint else net(x)
            h.sum().backward()
        return saved.peak_bytes, live.peak_bytes

    plain_saved, _ = measure(False)
    checkpoint_saved, checkpoint_live = measure(True)
    assert checkpoint_saved == F32 * 4 * 16  # x only
    assert plain_saved == F32 * 4 * (64 + 64)  # two ReLU outputs (frozen weights need no inputs)
    assert checkpoint_live >= plain_saved  # the recomputed activations all exist during backward


def test_parameters_and_optimizer_bytes():
    layer = torch.nn.Linear(10, 4)  # 44 parameters
    assert tensor_bytes(layer.parameters()) == 44 * 4
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    layer(torch.randn(2, 10)).sum().backward()
    opt.step()
    assert optimizer_state_bytes(opt) == 44 * 4  # one momentum buffer per parameter


# ---------------------------------------------------------------- a LocalNet of equal MLP units
BATCH, WIDTH, CLASSES, UNITS = 8, 32, 5, 4
UNIT_BYTES = F32 * BATCH * WIDTH  # one (BATCH, WIDTH) float32 activation
# cross-entropy keeps log-softmax (B, classes) float32, the int64 targets and a float32 weight sum
LOSS_BYTES = F32 * BATCH * CLASSES + 8 * BATCH + F32


def _mlp_net(cuts, context="R0"):
    torch.manual_seed(0)
    units = [nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU()) for _ in range(UNITS)]
    return LocalNet.from_units(units, cuts, nn.Linear(WIDTH, CLASSES), input_shape=(WIDTH,),
                               num_classes=CLASSES, aux_head="0c1f", context=context)


@pytest.mark.parametrize("cuts", [[], [1], [0, 1, 2]])
def test_local_learning_peak_is_one_module_by_structure(cuts):
    """A module of u units saves its input and u ReLU outputs, its head (a Linear) reads the last
    one, and the loss adds LOSS_BYTES; K=1 keeps all UNITS units at once."""
    memory = training_step_memory(_mlp_net(cuts), BATCH, (WIDTH,), CLASSES)
    units_per_module = UNITS // (len(cuts) + 1)
    assert memory["peak_saved_bytes"] == (1 + units_per_module) * UNIT_BYTES + LOSS_BYTES
    assert memory["module_peak_saved_bytes"] == [memory["peak_saved_bytes"]] * (len(cuts) + 1)
    # nothing of module k is still saved when module k+1 starts
    assert memory["retained_saved_bytes_at_module_start"] == [0] * (len(cuts) + 1)


def test_gll_peak_below_e2e_by_exactly_the_units_it_does_not_hold():
    e2e = training_step_memory(_mlp_net([]), BATCH, (WIDTH,), CLASSES)["peak_saved_bytes"]
    gll = training_step_memory(_mlp_net([0, 1, 2]), BATCH, (WIDTH,), CLASSES)["peak_saved_bytes"]
    assert e2e - gll == (UNITS - 1) * UNIT_BYTES
    assert gll < e2e


def test_context_encoder_is_all_that_crosses_a_cut():
    """With context E, what is still saved when module k+1 starts is exactly what the encoder of
    cut k saved (measured alone): the module's own activations are gone."""
    net = _mlp_net([0, 1, 2], context="E")
    memory = training_step_memory(net, BATCH, (WIDTH,), CLASSES)
    encoder = net.context.encoders_at(0)[0]
    with SavedTensorMeter(exclude=[*net.parameters(), *net.buffers()]) as alone:
        out = encoder(torch.randn(BATCH, WIDTH))
    assert alone.current_bytes > 0
    assert memory["retained_saved_bytes_at_module_start"] == [0] + [alone.current_bytes] * 3
    del out
