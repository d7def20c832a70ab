
import pytest
import torch

from cnnlab.config import AUGMENT_KEYS, resolve
from cnnlab.errors import UserError
from cnnlab.schema.config import AugmentConfig, ScheduleConfig
from cnnlab.train.augment import Augmenter, crop_and_flip, cutout, random_affine, random_crop, random_flip
from cnnlab.train.optim import Plateau, apply_constraints, lr_factor


def batch(n=16, c=3, size=8):
    return torch.arange(n * c * size * size, dtype=torch.float32).view(n, c, size, size) / (n * c * size * size)


def test_random_crop_equals_the_per_image_reference():
    x = batch()
    gen = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, "reflect", gen)
    gen = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 5, (16,), generator=gen)
    dx = torch.randint(0, 5, (16,), generator=gen)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(16):
        assert torch.equal(out[i], padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
def test_crop_and_flip_on_uint8_equals_padding_cropping_and_flipping_floats(mode):
    x = (torch.rand(40, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    gen = torch.Generator().manual_seed(1)
    dy, dx = torch.randint(0, 7, (40,), generator=gen), torch.randint(0, 7, (40,), generator=gen)
    hflip, vflip = torch.rand(40, generator=gen) < 0.5, torch.rand(40, generator=gen) < 0.5
    out = crop_and_flip(x, 3, mode, dy, dx, hflip, vflip)
    assert out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x.float(), (3, 3, 3, 3), mode=mode)
    for i in range(40):
        ref = padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8]
        ref = ref.flip(2) if hflip[i] else ref
        ref = ref.flip(1) if vflip[i] else ref
        assert torch.equal(out[i].float(), ref), i


def test_flip_flips_about_half_and_keeps_content():
    x = batch(n=200)
    out = random_flip(x, "horizontal", torch.Generator().manual_seed(1))
    flipped = [torch.equal(out[i], x[i].flip(2)) for i in range(200)]
    assert 60 < sum(flipped) < 140
    assert all(f or torch.equal(out[i], x[i]) for i, f in enumerate(flipped))


def test_rotation_with_reflect_fill_leaves_no_black_corners():
    x = torch.full((8, 3, 16, 16), 0.8)
    rotated = random_affine(x, 30, 0.0, 0, "reflect", torch.Generator().manual_seed(0))
    assert rotated.min() > 0.7
    black = random_affine(x, 30, 0.0, 0, "constant", torch.Generator().manual_seed(0))
    assert black[:, :, 0, 0].min() < 0.1  # the mistake the default avoids


def test_cutout_zeroes_a_square_per_image():
    x = torch.ones(4, 1, 16, 16)
    out = cutout(x, 4, torch.Generator().manual_seed(0))
    zeros = (out == 0).sum(dim=(1, 2, 3))
    assert all(1 <= z <= 16 for z in zeros.tolist())


def test_augmenter_is_seeded_and_normalises():
    settings = AugmentConfig(**{**AUGMENT_KEYS, "crop": 2, "flip": "horizontal", "rotate": 10, "brightness": 0.1,
                                "cutout": 3})
    aug = Augmenter(settings, [0.5] * 3, [0.25] * 3, torch.device("cpu"))
    x = (torch.rand(8, 3, 12, 12, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    a = aug.train_batch(x, torch.Generator().manual_seed(3))
    b = aug.train_batch(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (8, 3, 12, 12) and a.dtype == torch.float32
    plain = aug.eval_batch(x)
    assert torch.allclose(plain, (x.float() / 255 - 0.5) / 0.25)


def test_bad_augmentation_values_name_the_key():
    with pytest.raises(UserError, match="augment.fill must be one of reflect, constant, edge, replicate .*'black'"):
        resolve(None, ["augment.fill=black"])
    with pytest.raises(UserError, match="augment: flip, cutout not set"):  # settings not yet written out
        Augmenter(AugmentConfig(**{**AUGMENT_KEYS, "flip": None, "cutout": None}), [0], [1], torch.device("cpu"))


@pytest.mark.parametrize("name", ["constant", "step", "cosine", "onecycle", "warmup_linear", "warmup_cosine"])
def test_schedules_start_peak_and_end_where_expected(name):
    cfg = ScheduleConfig(name=name)
    f = [lr_factor(cfg, e, 20) for e in [0, 4, 10, 20]]
    assert all(0 <= v <= 1 for v in f)
    if name in ("onecycle", "warmup_linear", "warmup_cosine"):
        assert f[0] < 0.05 and f[1] == pytest.approx(1.0) and f[3] == pytest.approx(0.0, abs=1e-9)
    if name == "cosine":
        assert f[0] == 1.0 and f[2] == pytest.approx(0.5) and f[3] == pytest.approx(0.0, abs=1e-9)
    if name == "step":
        assert f[:3] == [1.0, 1.0, pytest.approx(0.1)] and f[3] == pytest.approx(0.01)


def test_plateau_cuts_after_patience():
    p = Plateau(patience=1, factor=0.5)
    scales = [p.update(v) for v in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95]]
    assert scales == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]


def test_max_norm_constraint_limits_each_units_weights():
    layer = torch.nn.Linear(10, 4)
    layer.max_norm = 0.5
    with torch.no_grad():
        layer.weight.mul_(100)
    apply_constraints(layer)
    assert torch.all(layer.weight.norm(dim=1) <= 0.5 + 1e-5)
