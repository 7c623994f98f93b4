"""Auxiliary heads, decoder and the decoder's loss weights (InfoPro's code; docs/models.md)."""
import pytest
import torch
from torch import nn

from mi_analysis.models import AUX_HEADS, build
from mi_analysis.models.heads import DEFAULT_LAMBDAS, Decoder, aux_head, module_lambdas, paper_lambdas


def count(module):
    return sum(p.numel() for p in module.parameters())


# hand counts, 10 classes, w=1, feature dim 128; e.g. 1c2f on 16 channels:
# conv 16*32*9 + BN 2*32 + Linear 32*128+128 + Linear 128*10+10 = 10,186
@pytest.mark.parametrize("name, channels, expected", [
    ("0c1f", 16, 16 * 10 + 10),
    ("0c2f", 16, 16 * 128 + 128 + 128 * 10 + 10),
    ("1c1f", 16, 16 * 32 * 9 + 64 + 32 * 10 + 10),
    ("1c2f", 16, 10_186),
    ("1c2f", 32, 32 * 64 * 9 + 128 + 64 * 128 + 128 + 1290),
    ("1c2f", 64, 64 * 64 * 9 + 128 + 64 * 128 + 128 + 1290),
    ("1c3f", 16, 10_186 + 128 * 128 + 128),
    ("2c2f", 16, 10_186 + 32 * 32 * 9 + 64),
])
def test_head_parameter_counts(name, channels, expected):
    assert count(aux_head(name, (channels, 8, 8), 10)) == expected


def test_head_layout_follows_the_table():
    convs = [m for m in aux_head("2c2f", (16, 32, 32), 10).modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride, c.bias) for c in convs] == \
        [(16, 32, (2, 2), None), (32, 32, (1, 1), None)]
    conv = next(m for m in aux_head("1c1f", (64, 8, 8), 10).modules() if isinstance(m, nn.Conv2d))
    assert (conv.out_channels, conv.stride) == (64, (1, 1))


def test_widen_and_feature_dim():
    head = aux_head("1c2f", (32, 8, 8), 128, widen=2, feature_dim=64)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    conv = next(m for m in head.modules() if isinstance(m, nn.Conv2d))
    assert conv.out_channels == 128
    assert [(l.in_features, l.out_features) for l in linears] == [(128, 128), (128, 128)]
    assert head(torch.randn(3, 32, 8, 8)).shape == (3, 128)


def test_other_channel_counts_generalise():
    conv = next(m for m in aux_head("1c2f", (24, 9, 9), 5).modules() if isinstance(m, nn.Conv2d))
    assert (conv.out_channels, conv.stride) == (48, (2, 2))
    conv = next(m for m in aux_head("1c2f", (128, 4, 4), 5).modules() if isinstance(m, nn.Conv2d))
    assert (conv.out_channels, conv.stride) == (128, (1, 1))


def test_vector_activations_take_only_conv_free_heads():
    head = aux_head("0c2f", (20,), 3)
    assert head(torch.randn(4, 20)).shape == (4, 3)
    assert count(head) == 20 * 128 + 128 + 128 * 3 + 3
    with pytest.raises(ValueError, match=r"aux_head='1c2f' has conv layers .* use one of \('0c1f', '0c2f'\)"):
        aux_head("1c2f", (20,), 3)
    with pytest.raises(ValueError, match=r"aux_head='3c3f' is unknown; expected one of"):
        aux_head("3c3f", (16, 8, 8), 3)
    assert AUX_HEADS == ("0c1f", "0c2f", "1c1f", "1c2f", "1c3f", "2c2f")


def test_decoder_convs_have_bias_like_infopro():
    decoder = Decoder((16, 8, 8), (3, 32, 32))
    # conv 16*12*9 + 12, BN 24, conv 12*3*9 + 3
    assert count(decoder) == 1740 + 24 + 327
    out = decoder(torch.randn(2, 16, 8, 8))
    assert out.shape == (2, 3, 32, 32) and out.min() >= 0 and out.max() <= 1


def test_decoder_loss_is_bce_of_the_sigmoid_output():
    torch.manual_seed(0)
    decoder = Decoder((8, 4, 4), (1, 8, 8), widen=0.5).eval()
    h, image = torch.randn(2, 8, 4, 4), torch.rand(2, 1, 8, 8)
    expected = nn.functional.binary_cross_entropy(decoder(h), image)
    assert decoder.loss(h, image).item() == pytest.approx(expected.item(), rel=1e-5)


def test_lambda_interpolation_known_answers():
    assert module_lambdas((6, 0, 1, 2), 4) == ((6, 0), (3.5, 1), (1, 2))   # ResNet-32 K=4
    assert module_lambdas((5, 1, 0, 0), 2) == ((5, 1),)                     # K=2: ratio 0
    weights = module_lambdas((5, 0, 0.5, 1), 16)                            # ResNet-110 K=16
    assert len(weights) == 15 and weights[0] == (5, 0) and weights[-1] == (0.5, 1)
    assert weights[7] == pytest.approx((2.75, 0.5))
    assert module_lambdas((1, 2, 3, 4), 1) == ()


def test_paper_lambdas_and_default():
    assert paper_lambdas("resnet32", 16, "cifar10") == (5, 0.05, 0.2, 0.5)
    assert paper_lambdas("resnet110", 4, "SVHN") == (5, 0, 0.5, 1)          # InfoPro's value
    assert paper_lambdas("resnet110", 8, "stl10") == (20, 0.2, 5, 1)
    assert paper_lambdas("resnet32", 5, "cifar10") is None
    net = build("resnet32", 4, reconstruct=True, image_size=8)
    assert net.describe()["lambdas"] == [[6, 0], [3.5, 1], [1, 2]]
    assert net.describe()["lambdas_source"] == "paper table"
    net = build("resnet20", 3, reconstruct=True, image_size=8)
    assert net.describe()["lambdas_source"] == "default"
    assert net.describe()["lambdas"] == [list(DEFAULT_LAMBDAS[:2]), list(DEFAULT_LAMBDAS[2:])]
    net = build("resnet20", 3, reconstruct=True, image_size=8, lambdas=(2, 1, 1, 3))
    assert net.describe()["lambdas"] == [[2, 1], [1, 3]] and net.describe()["lambdas_source"] == "user"


def test_decoders_are_built_only_where_their_weight_is_not_zero():
    net = build("resnet32", 8, reconstruct=True, image_size=8)   # [5, 0, 0, 2]: lambda_x = 0 at k = 6
    assert net.describe()["decoders_at"] == [0, 1, 2, 3, 4, 5]
    assert build("resnet32", 8, image_size=8).parameter_counts()["decoders"] == 0
    with pytest.raises(ValueError, match=r"lambdas must be 4 non-negative numbers"):
        build("resnet32", 4, reconstruct=True, lambdas=(1, 2, 3))
