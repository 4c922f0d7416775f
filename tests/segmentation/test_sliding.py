"""The sliding-window baseline: the batched patch path equals the per-pixel loop of the lecture."""

import torch

from cnnkit.segmentation.sliding import (
    PatchClassifier,
    patches_at,
    sample_patches,
    sliding_window_logits,
    sliding_window_reference,
)


def test_batched_sliding_window_equals_the_pixel_loop():
    torch.manual_seed(0)
    classifier = PatchClassifier(4, patch_size=9).eval()
    image = torch.randn(3, 7, 6)
    fast = sliding_window_logits(classifier, image, 9, chunk=10)  # chunks that split rows
    slow = sliding_window_reference(classifier, image, 9)
    assert fast.shape == (4, 7, 6)
    assert torch.allclose(fast, slow, atol=1e-5)


def test_patches_are_centred_on_their_pixel_with_zero_padding():
    images = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    patch = patches_at(images, torch.tensor([0, 2]), torch.tensor([0, 3]), torch.tensor([1, 0]), 3)
    assert patch.shape == (2, 1, 3, 3)
    assert patch[0, 0, 1, 1] == images[1, 0, 0, 0] and patch[0, 0, 0].tolist() == [0, 0, 0]
    assert torch.equal(patch[1, 0], images[0, 0, 1:4, 2:5])


def test_sampled_patches_avoid_void_pixels():
    images = torch.rand(2, 3, 8, 8)
    masks = torch.full((2, 8, 8), 255)
    masks[0, 2, 3], masks[1, 5, 6] = 1, 2
    patches, labels = sample_patches(images, masks, 5, 5, torch.Generator().manual_seed(0))
    assert patches.shape == (10, 3, 5, 5) and labels.tolist() == [1] * 5 + [2] * 5
    assert torch.equal(patches[0, :, 2, 2], images[0, :, 2, 3])
