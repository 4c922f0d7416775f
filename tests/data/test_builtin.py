"""Built-in datasets: real digits and faces, generated shapes; fixed, stratified, disjoint splits."""

import json

import pytest
import torch

from cnnkit.data import Dataset, ImageSet, list_datasets, load_dataset, transforms
from cnnkit.data.builtin import generate_shapes
from cnnkit.data.dataset import stratified_split


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_list_and_unknown_source_names_the_choices():
    assert list_datasets()[:3] == ["digits", "faces", "shapes"]
    with pytest.raises(ValueError, match="digits, faces, shapes, mnist, fashion-mnist, cifar10, cifar100"):
        load_dataset("digitz")


def test_digits_are_the_real_1797_upsampled_to_28(digits):
    assert isinstance(digits, Dataset) and digits.classes == [str(d) for d in range(10)]
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1259, 269, 269)
    assert digits.in_channels == 1 and digits.image_size == (28, 28) and digits.augmentation == "none"
    x, y = digits.train.batch(torch.arange(len(digits.train)))
    assert x.shape == (1259, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.99
    torch.testing.assert_close(torch.tensor(digits.mean), x.mean((0, 2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(digits.std), x.std((0, 2, 3), correction=0), atol=1e-5, rtol=0)
    for split in (digits.train, digits.val, digits.test):  # stratified: every class in proportion
        counts = split.class_counts(10).float()
        assert counts.min() >= 0.9 * counts.mean()


def test_digits_match_sklearn_at_native_size():
    from sklearn.datasets import load_digits

    data = load_dataset("digits", image_size=8)
    everything = torch.cat([data.train.images, data.val.images, data.test.images]).flatten(1)
    reference = torch.from_numpy(load_digits().data).float() / 16
    assert everything.shape == reference.shape
    # same multiset of images: sort rows lexicographically by a fixed projection
    projection = torch.randn(64, dtype=torch.float64)
    assert torch.allclose(
        (everything.double() @ projection).sort().values, (reference.double() @ projection).sort().values
    )


def test_lenet_size_is_offered():
    assert load_dataset("digits", image_size=32).train.images.shape[1:] == (1, 32, 32)


def test_builtin_splits_are_fixed_whatever_the_seed(digits):
    again = load_dataset("digits", seed=123)
    for a, b in zip((digits.train, digits.val, digits.test), (again.train, again.val, again.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_stratified_split_is_disjoint_complete_seeded_and_balanced():
    labels = torch.arange(5).repeat_interleave(40)
    parts = stratified_split(labels, (0.7, 0.15, 0.15), seed=3)
    joined = torch.cat(parts)
    assert len(joined) == 200 and len(set(joined.tolist())) == 200
    assert [len(p) for p in parts] == [140, 30, 30]
    for part in parts:
        assert torch.bincount(labels[part]).tolist() == [len(part) // 5] * 5
    assert all(torch.equal(a, b) for a, b in zip(parts, stratified_split(labels, (0.7, 0.15, 0.15), seed=3)))
    assert not torch.equal(parts[1], stratified_split(labels, (0.7, 0.15, 0.15), seed=4)[1])


def test_faces_are_the_skimage_patches():
    faces = load_dataset("faces")
    assert faces.classes == ["face", "non-face"] and faces.image_size == (25, 25) and faces.in_channels == 1
    assert len(faces.train) + len(faces.val) + len(faces.test) == 200
    assert faces.test.class_counts(2).tolist() == [15, 15]


def test_shapes_are_generated_reproducibly_and_balanced():
    shapes = load_dataset("shapes")
    assert shapes.classes == ["circle", "square", "triangle"] and shapes.in_channels == 3
    assert shapes.train.images.dtype == torch.uint8 and shapes.train.images.shape[1:] == (3, 32, 32)
    assert [len(s) for s in (shapes.train, shapes.val, shapes.test)] == [2100, 450, 450]
    assert shapes.test.class_counts(3).tolist() == [150, 150, 150]
    labels = torch.tensor([0, 1, 2, 0])
    assert torch.equal(generate_shapes(labels, seed=5), generate_shapes(labels, seed=5))
    assert not torch.equal(generate_shapes(labels, seed=5), generate_shapes(labels, seed=6))
    # the shape differs from the background: the image is not flat
    assert (generate_shapes(labels).amax((2, 3)) - generate_shapes(labels).amin((2, 3))).amax(1).min() > 0.3


def test_in_memory_batch_is_one_index_with_no_per_sample_python(digits, monkeypatch):
    expected = torch.stack([digits.train[i][0] for i in (5, 0, 7)])
    monkeypatch.setattr(ImageSet, "read", lambda self, i: pytest.fail("per-sample read on the hot path"))
    x, y = digits.train.batch(torch.tensor([5, 0, 7]))
    assert torch.equal(x, expected) and y.tolist() == digits.train.labels[[5, 0, 7]].tolist()


def test_metadata_is_plain_json(digits):
    info = json.loads(json.dumps(digits.to_dict()))
    assert info["sizes"] == {"train": 1259, "val": 269, "test": 269} and info["image_size"] == [28, 28]
    assert info["skipped"] == [] and info["in_memory"] is True


def test_default_presets_never_flip_digits(digits):
    augment = transforms.augmentation(digits.augmentation, digits.image_size)
    asymmetric = torch.zeros(64, 1, 28, 28)
    asymmetric[:, :, 10:18, 2:6] = 1  # a bar at the left
    out = augment(asymmetric, torch.Generator().manual_seed(0))
    assert (out[..., :, :14].sum((1, 2, 3)) > out[..., :, 14:].sum((1, 2, 3))).all()
