"""Batched transforms: crops and flips against per-image slicing, determinism under a generator."""

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from cnnkit.data import transforms


def batch(n=6, c=3, h=10, w=12, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_normalize_standardises_with_computed_statistics():
    x = batch() * 0.5 + 0.2
    mean, std = x.mean((0, 2, 3)), x.std((0, 2, 3), correction=0)
    z = transforms.normalize(x, mean.tolist(), std.tolist())
    torch.testing.assert_close(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std((0, 2, 3), correction=0), torch.ones(3), atol=1e-5, rtol=0)


def test_resize_and_center_crop_match_torchvision():
    x = batch()
    torch.testing.assert_close(transforms.resize(x, (5, 7)), TF.resize(x, [5, 7], antialias=True), atol=1e-5, rtol=0)
    assert torch.equal(transforms.center_crop(x, (4, 6)), TF.center_crop(x, [4, 6]))
    with pytest.raises(ValueError, match="larger than the image"):
        transforms.center_crop(x, 20)


def test_random_crop_takes_windows_of_the_padded_image():
    x = batch()
    out = transforms.random_crop(x, (10, 12), padding=2, generator=torch.Generator().manual_seed(1))
    padded = F.pad(x, (2, 2, 2, 2))
    assert out.shape == x.shape
    offsets = set()
    for image, result in zip(padded, out):  # each output is exactly one window of its own padded image
        matches = [
            (top, left)
            for top in range(5)
            for left in range(5)
            if torch.equal(image[:, top : top + 10, left : left + 12], result)
        ]
        assert matches
        offsets.add(matches[0])
    assert len(offsets) > 1  # offsets differ between images


def test_random_flip_mirrors_about_half_the_images_exactly():
    x = batch(n=200)
    out = transforms.random_flip(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert (flipped ^ kept).all() and 70 < flipped.sum() < 130


@pytest.mark.parametrize("preset", transforms.PRESETS)
def test_presets_are_deterministic_under_a_generator_and_keep_the_shape(preset):
    x = batch(n=8, h=32, w=32)
    augment = transforms.augmentation(preset, 32)
    first = augment(x, torch.Generator().manual_seed(7))
    assert first.shape == x.shape and torch.equal(first, augment(x, torch.Generator().manual_seed(7)))
    if preset != "none":
        assert not torch.equal(first, augment(x, torch.Generator().manual_seed(8)))
    else:
        assert first is x


def test_generator_state_resumes_the_same_sequence():
    x = batch(n=8, h=32, w=32)
    augment = transforms.augmentation("crop-flip", 32)
    generator = torch.Generator().manual_seed(0)
    augment(x, generator)
    state = generator.get_state()
    expected = augment(x, generator)
    resumed = torch.Generator()
    resumed.set_state(state)
    assert torch.equal(augment(x, resumed), expected)


def test_random_resized_crop_with_full_scale_is_the_identity():
    x = batch(h=16, w=16)
    out = transforms.random_resized_crop(x, 16, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)
    assert transforms.random_resized_crop(x, (8, 9), torch.Generator()).shape == (6, 3, 8, 9)


def test_crop_preset_pads_an_eighth_and_unknown_presets_are_named():
    assert transforms.augmentation("crop-flip", 32).padding == 4
    assert transforms.augmentation("crop", 28).padding == 4
    with pytest.raises(ValueError, match="none, flip, crop, crop-flip, standard"):
        transforms.augmentation("mixup", 32)
