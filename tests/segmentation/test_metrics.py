"""Segmentation metrics against scikit-learn, with void pixels left out."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sklearn_confusion
from sklearn.metrics import jaccard_score

from cnnkit.segmentation.metrics import confusion_matrix, segmentation_scores


def test_scores_equal_sklearn_with_void_ignored():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (2, 17, 23), generator=generator)
    predicted = torch.where(torch.rand(target.shape, generator=generator) < 0.6, target,
                            torch.randint(0, 4, target.shape, generator=generator))
    target[:, :3] = 255  # void rows
    confusion = confusion_matrix(predicted, target, 4)
    keep = (target != 255).flatten().numpy()
    t, p = target.flatten().numpy()[keep], predicted.flatten().numpy()[keep]
    assert np.array_equal(confusion.numpy(), sklearn_confusion(t, p, labels=range(4)))
    scores = segmentation_scores(confusion)
    assert scores["pixels"] == keep.sum()
    assert scores["pixel_accuracy"] == pytest.approx((t == p).mean())
    expected_iou = jaccard_score(t, p, labels=range(4), average=None)
    assert list(scores["iou"].values()) == pytest.approx(expected_iou.tolist())
    assert scores["mean_iou"] == pytest.approx(expected_iou.mean())
    recall = [(p[t == k] == k).mean() for k in range(4)]
    assert scores["mean_class_accuracy"] == pytest.approx(np.mean(recall))


def test_absent_class_has_no_iou_and_is_left_out_of_the_mean():
    target = torch.tensor([[0, 0, 1, 1]])
    scores = segmentation_scores(confusion_matrix(target.clone(), target, 3), ["a", "b", "c"])
    assert math.isnan(scores["iou"]["c"]) and scores["mean_iou"] == 1.0 and scores["pixel_accuracy"] == 1.0


def test_bad_targets_are_refused():
    with pytest.raises(ValueError, match="0..2"):
        confusion_matrix(torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 7, 255]), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long), 3)
