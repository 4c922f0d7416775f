"""Logistic regression against scikit-learn's, and the folded linear layer."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from cnnkit.transfer.linear import fit_linear, fit_logistic


def blobs(n=300, d=12, k=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=generator) * 1.5
    labels = torch.arange(n) % k
    features = centres[labels] + torch.randn(n, d, generator=generator) * 2 + 5  # offset: standardisation matters
    return features, labels


@pytest.mark.parametrize("penalty", [1e-3, 1e-1])
def test_matches_sklearn_multinomial_logistic_regression(penalty):
    x, y = blobs()
    ours = fit_logistic(x, y, 3, penalty)
    z = ((x - x.mean(0)) / x.std(0, unbiased=False)).numpy().astype(np.float64)
    # sklearn minimises C Σ loss + ½‖W‖², i.e. mean loss + ‖W‖² / (2 C N): λ = 1 / (C N)
    reference = LogisticRegression(C=1 / (penalty * len(y)), tol=1e-10, max_iter=5000).fit(z, y.numpy())
    probabilities = torch.softmax(ours.logits(x), 1).numpy()
    np.testing.assert_allclose(probabilities, reference.predict_proba(z), atol=2e-3)


def test_folded_layer_gives_the_same_logits_on_raw_features():
    x, y = blobs()
    classifier = fit_logistic(x, y, 3, 1e-2)
    torch.testing.assert_close(classifier.as_linear()(x), classifier.logits(x), atol=1e-4, rtol=1e-4)


def test_penalty_chosen_on_validation_and_accuracy_reported():
    x, y = blobs(600)
    classifier, accuracy = fit_linear(x[:400], y[:400], x[400:], y[400:], 3)
    assert accuracy == classifier.accuracy(x[400:], y[400:]) > 0.8
    assert classifier.penalty in (1e-4, 1e-3, 1e-2, 1e-1)
