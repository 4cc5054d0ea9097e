import torch
from torch import nn

from engine.model import build_model, to_memory_format


def test_fanin_init_has_fan_in_variance_and_bn_identity():
    torch.manual_seed(0)
    model = build_model("resnet50", "fanin", 10)
    w = model.layer3[0].conv2.weight  # 256 in × 3 × 3
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    assert abs(w.std().item() - (2.0 / fan_in) ** 0.5) / (2.0 / fan_in) ** 0.5 < 0.05
    bn = model.layer3[0].bn2
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_zero_init_residual_zeroes_the_last_bn_of_each_block():
    model = build_model("resnet50", "fanin", 10, zero_init_residual=True)
    assert all(torch.all(m.bn3.weight == 0) for m in model.modules() if hasattr(m, "bn3"))


def test_nhwc_takes_effect_on_weights_and_outputs():
    model = to_memory_format(build_model("resnet50", "classic", 10), "nhwc")
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    model.eval()
    with torch.no_grad():
        feat = nn.Sequential(model.conv1, model.bn1)(x)
    assert feat.is_contiguous(memory_format=torch.channels_last)
