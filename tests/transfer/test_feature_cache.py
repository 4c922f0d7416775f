"""Features: the classifier's input, pooled stages, the on-disk cache and its key."""

import pytest
import torch

from cnnkit.transfer import HEAD_INPUT, FeatureCache, compute_features, prepare
from cnnkit.transfer.features import grid_size, layer_names


@pytest.fixture(scope="module")
def target(pretrained_file, shapes, tmp_path_factory):
    return prepare(pretrained_file, shapes, cache_dir=tmp_path_factory.mktemp("cache"))


def test_head_input_is_the_pooled_trunk_the_classifier_reads(target):
    model, images = target.model, target.dataset.val
    features = compute_features(model, images, HEAD_INPUT, target.mean, target.std)
    x, _ = images.batch(torch.arange(len(images)))
    x = (x - torch.tensor(target.mean)[:, None, None]) / torch.tensor(target.std)[:, None, None]
    with torch.no_grad():
        expected = torch.flatten(model.avgpool(model.forward_features(x)), 1)  # (N, 64)
    torch.testing.assert_close(features, expected, atol=1e-4, rtol=1e-4)


def test_stages_are_pooled_to_about_256_numbers(target):
    assert layer_names(target.model) == ["layer1", "layer2", "layer3", HEAD_INPUT]
    assert [grid_size(c, 32) for c in (16, 32, 64, 512)] == [4, 3, 2, 1]
    features = compute_features(target.model, target.dataset.test.subset(torch.arange(5)), "layer1", target.mean, target.std)
    assert features.shape == (5, 16 * 4 * 4)


def test_cache_returns_the_same_features_and_keys_on_layer_and_data(target, tmp_path):
    cache = FeatureCache(tmp_path)
    images = target.dataset.val
    first = cache.features(target.model, images, "layer2", target.mean, target.std, target.weights_key)
    again = cache.features(target.model, images, "layer2", target.mean, target.std, target.weights_key)
    assert (cache.misses, cache.hits) == (1, 1) and torch.equal(first, again)
    cache.features(target.model, images, "layer3", target.mean, target.std, target.weights_key)
    cache.features(target.model, images.subset(torch.arange(10)), "layer2", target.mean, target.std, target.weights_key)
    cache.features(target.model, images, "layer2", target.mean, target.std, "other-weights")
    assert cache.misses == 4 and len(list(tmp_path.glob("*.safetensors"))) == 4


def test_unknown_layer_lists_the_stages(target):
    with pytest.raises(ValueError, match="no layer 'layer9'; its stages are layer1, layer2, layer3, head-input"):
        compute_features(target.model, target.dataset.val, "layer9", target.mean, target.std)
