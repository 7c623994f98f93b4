import torch

from mi_analysis.memory import SavedTensorMeter, optimizer_state_bytes, tensor_bytes


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
    expected = 4 * batch * (10 + 20 + 30)  # float32 input, relu(20), relu(30); parameters excluded
    assert during == expected
    assert meter.peak_bytes == expected
    assert meter.current_bytes == 0  # everything released by backward


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
    per_block_input = 4 * 32 * 64
    assert e2e == 4 * 32 * 16 + 4 * per_block_input  # inputs of all layers + last relu output
    assert local == 2 * per_block_input  # one block's input and its relu output at a time


def test_parameters_and_optimizer_bytes():
    layer = torch.nn.Linear(10, 4)  # 44 parameters
    assert tensor_bytes(layer.parameters()) == 44 * 4
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    layer(torch.randn(2, 10)).sum().backward()
    opt.step()
    assert optimizer_state_bytes(opt) == 44 * 4  # one momentum buffer per parameter
