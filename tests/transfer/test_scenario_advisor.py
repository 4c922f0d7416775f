"""The advisor: batch-norm divergence, the probe's peak, the quadrants, and real data."""

import pytest
import torch

from cnnkit.data.dataset import build_dataset
from cnnkit.models import create_model
from cnnkit.transfer import advise, batchnorm_divergence, prepare, probe_layers
from cnnkit.transfer.advisor import STRATEGIES

from transfer_helpers import CIFAR_WEIGHTS, SHARED_DATA, settle_batchnorm, tiny_dataset


def test_divergence_is_zero_on_the_data_the_statistics_came_from_and_grows_with_a_shift():
    torch.manual_seed(0)
    model = create_model("resnet20")
    images = torch.rand(64, 3, 16, 16)
    dataset = tiny_dataset("noise", images, torch.arange(64) % 2, split=(1.0, 0.0, 0.0))
    settle_batchnorm(model, images)
    same = batchnorm_divergence(model, dataset.train, [0, 0, 0], [1, 1, 1])
    assert same["mean"] < 1e-3 and len(same["layers"]) == 19
    shifted = batchnorm_divergence(model, dataset.train, [-0.5, 0, 0], [0.5, 1, 1])
    assert shifted["mean"] > 0.05 > same["mean"]
    assert batchnorm_divergence(create_model("lenet5"), dataset.train, [0], [1]) is None


def test_quadrants_follow_the_lecture_table():
    assert STRATEGIES == {("small", "similar"): "linear", ("small", "different"): "intermediate",
                          ("large", "similar"): "finetune-top", ("large", "different"): "finetune-all"}


def test_advice_on_the_pretraining_distribution_is_similar(pretrained_file, shapes, tmp_path):
    subset = build_dataset("shapes-subset", shapes.classes, (shapes.train.subset(torch.arange(0, 2100, 8)),
                           shapes.val.subset(torch.arange(0, 450, 5)), shapes.test.subset(torch.arange(0, 450, 5))))
    target = prepare(pretrained_file, subset, cache_dir=tmp_path)
    probe = probe_layers(target)
    assert [s.layer for s in probe.scores] == ["layer1", "layer2", "layer3", "head-input"]
    assert probe.best.val_top1 == max(s.val_top1 for s in probe.scores)
    advice = advise(target, probe=probe)
    m = advice.measurements
    assert advice.size == "small" and 80 < m["examples_per_class"]["min"] < 100
    assert m["batchnorm_divergence"]["mean"] < 0.1
    assert advice.strategy == STRATEGIES[(advice.size, advice.similarity)]
    assert f"{m['examples_per_class']['min']} training images" in advice.explanation and advice.strategy in advice.explanation


@pytest.mark.shared_data
@pytest.mark.skipif(not CIFAR_WEIGHTS.exists(), reason="needs ../shared/data/weights")
def test_real_resnet20_cifar_sample_is_small_and_similar_faces_different(tmp_path):
    advice = advise(CIFAR_WEIGHTS, SHARED_DATA / "cifar10-sample", cache_dir=tmp_path)
    assert (advice.quadrant, advice.strategy, advice.layer) == ("small, similar", "linear", "head-input")
    assert advice.measurements["batchnorm_divergence"]["mean"] < 0.05
    faces = advise(CIFAR_WEIGHTS, "faces", cache_dir=tmp_path)
    assert faces.quadrant == "small, different" and faces.strategy == "intermediate"
    assert faces.measurements["batchnorm_divergence"]["mean"] > 0.1
    assert any("resized from 25×25" in note for note in faces.measurements["adaptations"])
