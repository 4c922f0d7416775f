"""Metrics against scikit-learn and hand counts; evaluate on a tiny in-memory set."""

import pytest
import torch
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix
from sklearn.metrics import top_k_accuracy_score

from cnnkit.data.dataset import ImageSet
from cnnkit.train.metrics import confusion_matrix, evaluate, per_class_accuracy, topk_correct


def test_topk_against_sklearn():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 7, generator=generator)
    targets = torch.randint(0, 7, (200,), generator=generator)
    hits = topk_correct(logits, targets, ks=(1, 3, 5))
    for k in (1, 3, 5):
        expected = top_k_accuracy_score(targets.numpy(), logits.numpy(), k=k, labels=list(range(7)))
        assert hits[k] / 200 == pytest.approx(expected)


def test_topk_by_hand_and_k_beyond_classes():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.2], [0.3, 0.2, 0.5]])
    targets = torch.tensor([1, 2, 1])
    assert topk_correct(logits, targets, ks=(1, 2, 5)) == {1: 1, 2: 2, 5: 3}


def test_confusion_matrix_and_per_class_against_sklearn():
    generator = torch.Generator().manual_seed(1)
    targets = torch.randint(0, 4, (300,), generator=generator)
    predictions = torch.randint(0, 4, (300,), generator=generator)
    matrix = confusion_matrix(predictions, targets, 5)  # class 4 never occurs
    expected = sklearn_confusion_matrix(targets.numpy(), predictions.numpy(), labels=list(range(5)))
    assert matrix.tolist() == expected.tolist()
    accuracy = per_class_accuracy(matrix)
    assert accuracy[4] is None
    for c in range(4):
        assert accuracy[c] == pytest.approx(((predictions == c) & (targets == c)).sum().item() / (targets == c).sum().item())


class Scores(torch.nn.Module):
    """A 'model' whose logits are a fixed table looked up by the image's first pixel."""

    classifier_name = "head"

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.head = torch.nn.Linear(1, table.shape[1])

    def forward(self, x):
        return self.table[x[:, 0, 0, 0].round().long()]


def test_evaluate_counts_every_image_once():
    table = torch.tensor([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0], [2.0, 0.0, 1.0], [0.0, 1.0, 2.0]])
    images = torch.arange(5.0).reshape(5, 1, 1, 1).expand(5, 1, 2, 2).contiguous()
    labels = torch.tensor([0, 1, 2, 1, 0])  # predictions 0, 1, 2, 0, 2: three right
    result = evaluate(Scores(table), ImageSet(labels, images=images), mean=[0.0], std=[1.0], batch_size=2,
                      channels_last=False)
    assert result["count"] == 5
    assert result["top1"] == pytest.approx(3 / 5)
    assert result["confusion_matrix"] == [[1, 0, 1], [1, 1, 0], [0, 0, 1]]
    assert result["per_class_accuracy"] == pytest.approx([0.5, 0.5, 1.0])
    expected_loss = torch.nn.functional.cross_entropy(table, labels).item()
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-6)
