"""engine/data/autoaugment.py gives torchvision's v2.AutoAugment(IMAGENET), op for op and pixel for pixel."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as F
from torchvision.transforms import v2

from engine.data.autoaugment import NUM_BINS, SPACE, SUB_POLICIES, AutoAugment, apply_op, draws, magnitude

NEAREST = v2.InterpolationMode.NEAREST

# torchvision's calls, as v2.AutoAugment makes them (torchvision/transforms/v2/_auto_augment.py)
REFERENCE = {
    "ShearX": lambda t, m: F.affine(t, 0.0, [0, 0], 1.0, [math.degrees(math.atan(m)), 0.0], NEAREST, None, [0, 0]),
    "ShearY": lambda t, m: F.affine(t, 0.0, [0, 0], 1.0, [0.0, math.degrees(math.atan(m))], NEAREST, None, [0, 0]),
    "TranslateX": lambda t, m: F.affine(t, 0.0, [int(m), 0], 1.0, [0.0, 0.0], NEAREST, None),
    "TranslateY": lambda t, m: F.affine(t, 0.0, [0, int(m)], 1.0, [0.0, 0.0], NEAREST, None),
    "Rotate": lambda t, m: F.rotate(t, m, NEAREST, fill=None),
    "Brightness": lambda t, m: F.adjust_brightness(t, 1.0 + m),
    "Color": lambda t, m: F.adjust_saturation(t, 1.0 + m),
    "Contrast": lambda t, m: F.adjust_contrast(t, 1.0 + m),
    "Sharpness": lambda t, m: F.adjust_sharpness(t, 1.0 + m),
    "Posterize": lambda t, m: F.posterize(t, int(m)),
    "Solarize": lambda t, m: F.solarize(t, 255.0 * m),
    "AutoContrast": lambda t, m: F.autocontrast(t),
    "Equalize": lambda t, m: F.equalize(t),
    "Invert": lambda t, m: F.invert(t),
}  # fmt: skip


def images() -> list[torch.Tensor]:
    """Noise, a smooth low-contrast picture, a 224² crop, one channel, and flat planes (equalize's edge)."""
    g = torch.Generator().manual_seed(7)
    smooth = torch.linspace(40, 200, 48 * 64).view(1, 48, 64) + torch.randint(0, 20, (3, 48, 64), generator=g)
    flat = torch.full((3, 20, 30), 77, dtype=torch.uint8)
    flat[1, :2, :3] = 200  # one channel nearly flat: its equalize step is 0
    return [
        torch.randint(0, 256, (3, 37, 53), generator=g, dtype=torch.uint8),
        smooth.to(torch.uint8),
        torch.randint(0, 256, (3, 224, 224), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (1, 40, 30), generator=g, dtype=torch.uint8),
        flat,
    ]


def test_the_policy_and_magnitudes_are_torchvisions():
    tv = v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)
    assert tuple(tuple(stage) for stage in tv._policies) == SUB_POLICIES
    for op, (make, signed) in tv._AUGMENTATION_SPACE.items():
        assert SPACE[op][1] == signed, op
        for h, w in ((224, 224), (37, 53)):
            values = make(NUM_BINS, h, w)
            expected = [0.0] * NUM_BINS if values is None else [float(v) for v in values]
            assert [magnitude(op, b, h, w) for b in range(NUM_BINS)] == expected, op


@pytest.mark.parametrize("op", sorted(SPACE))
def test_each_op_gives_torchvisions_pixels_at_every_magnitude(op):
    for img in images():
        h, w = img.shape[-2:]
        signs = (1, -1) if SPACE[op][1] else (1,)
        for m in sorted({s * magnitude(op, b, h, w) for b in range(NUM_BINS) for s in signs}):
            before = img.clone()
            ours, theirs = apply_op(img, op, m), REFERENCE[op](img, m)
            assert ours.dtype == torch.uint8 and ours.shape == img.shape
            assert torch.equal(ours, theirs), f"{op} at {m} on {tuple(img.shape)}"
            assert torch.equal(img, before)  # the input is shared with the op's array, never written


def test_a_geometric_op_fills_what_torchvision_fills_with_a_fill_value():
    img = images()[0]
    for m in (-30.0, 13.3):
        assert torch.equal(apply_op(img, "Rotate", m, fill=128), F.rotate(img, m, NEAREST, fill=128))
    shear = F.affine(img, 0.0, [0, 0], 1.0, [math.degrees(math.atan(0.3)), 0.0], NEAREST, 128, [0, 0])
    assert torch.equal(apply_op(img, "ShearX", 0.3, fill=128), shear)


def test_the_whole_policy_is_torchvisions_ops_applied_as_the_draws_say():
    img = images()[0]
    h, w = img.shape[-2:]
    aa, changed = AutoAugment(), 0
    for seed in range(60):
        sub, run, sign = draws(seed, len(SUB_POLICIES), 2)
        expected = img
        for (op, p, bin_), u, s in zip(SUB_POLICIES[sub], run, sign):
            if u < p:
                m = 0.0 if bin_ is None else magnitude(op, bin_, h, w)
                expected = REFERENCE[op](expected, -m if s and SPACE[op][1] else m)
        out = aa(img, seed)
        assert torch.equal(out, expected), f"seed {seed}"
        changed += not torch.equal(out, img)
    assert changed >= 30  # most draws apply at least one op


def test_the_result_depends_on_the_seed_alone():
    img = images()[2]
    torch.manual_seed(1)
    state = torch.get_rng_state()
    first = [AutoAugment()(img, seed) for seed in range(20)]
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is neither read nor advanced
    torch.manual_seed(2)
    assert all(torch.equal(a, AutoAugment()(img, seed)) for seed, a in enumerate(first))
    # random.Random(int) is the same in every process and Python version: the draws are pinned here
    assert draws(12345, 25, 2) == (13, [0.7326852754516092, 0.8201747225612886], [1, 0])


def test_a_wrong_image_is_refused_in_one_line():
    with pytest.raises(ValueError, match="uint8 C×H×W tensor with 1 or 3 channels, got torch.float32"):
        AutoAugment()(torch.zeros(3, 8, 8), 1)
