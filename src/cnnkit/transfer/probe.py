"""The pretrained network fitted to a target dataset, and the per-layer linear probe.

`prepare` joins the two: it loads the pretrained model and the target data, adapts the size
and channels, and gives features of any layer and split through the cache. `probe_layers`
fits a logistic regression (`cnnkit.transfer.linear`) on each stage's pooled features and on
the classifier's input, scores each on the validation split and picks the best — the
lecture's "classifier on an intermediate layer", and one of the advisor's similarity signals
(a peak below the top means the top layers are too specific to the old task; Yosinski et al.
2014, "How transferable are features in deep neural networks?").
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field

from torch import Tensor, nn

from cnnkit.data import Dataset
from cnnkit.transfer.backbone import Pretrained, adapt_input, load_pretrained, load_target
from cnnkit.transfer.features import FeatureCache, check_layer, default_cache_dir, layer_names
from cnnkit.transfer.linear import LinearClassifier, fit_linear


@dataclass
class Target:
    """A pretrained network adapted to a target dataset.

    model: the pretrained model (a copy with the target's input channels when they differ),
    eval mode. mean, std: the normalisation its input needs. notes: what was adapted.
    """

    pretrained: Pretrained
    dataset: Dataset
    model: nn.Module
    mean: list[float]
    std: list[float]
    cache: FeatureCache
    notes: list[str] = field(default_factory=list)
    _memory: dict = field(default_factory=dict, repr=False)

    @property
    def weights_key(self) -> str:
        return f"{self.pretrained.fingerprint}:{self.pretrained.architecture}:{self.dataset.in_channels}"

    def features(self, layer: str, split: str) -> tuple[Tensor, Tensor]:
        """Features (N, D) and labels (N,) of one split at ``layer``, through the cache."""
        return self.features_of([layer], split)[layer], self.dataset.split(split).labels

    def features_of(self, layers: list[str], split: str) -> dict[str, Tensor]:
        """Features of several layers of one split, computed together (`FeatureCache.many`)."""
        missing = [layer for layer in layers if (split, layer) not in self._memory]
        if missing:
            images = self.dataset.split(split)
            computed = self.cache.many(self.model, images, missing, self.mean, self.std, self.weights_key)
            self._memory.update({(split, layer): features for layer, features in computed.items()})
        return {layer: self._memory[(split, layer)] for layer in layers}


def prepare(source: str | os.PathLike | Pretrained, data: str | os.PathLike | Dataset, *,
            architecture: str | None = None, data_root=None, cache_dir: str | os.PathLike | None = "default",
            seed: int = 0) -> Target:
    """Load ``source`` (see `load_pretrained`) and ``data`` (see `load_target`) and adapt them.

    cache_dir: where features are cached; "default" is `default_cache_dir()`, None disables.
    """
    pretrained = source if isinstance(source, Pretrained) else load_pretrained(source, architecture)
    dataset, notes = load_target(data, pretrained, data_root, seed)
    model, mean, std = pretrained.model, pretrained.mean, pretrained.std
    if dataset.in_channels != pretrained.in_channels:
        model = copy.deepcopy(model)
        mean, std = adapt_input(model, mean, std, dataset.in_channels)
    cache = FeatureCache(default_cache_dir() if cache_dir == "default" else cache_dir)
    return Target(pretrained, dataset, model.eval(), list(mean), list(std), cache, list(pretrained.notes) + notes)


@dataclass
class LayerScore:
    """One probed layer: feature dimensions, validation and test top-1, seconds (features + fit)."""

    layer: str
    dimensions: int
    val_top1: float
    test_top1: float
    seconds: float
    classifier: LinearClassifier | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "dimensions": self.dimensions, "val_top1": self.val_top1,
                "test_top1": self.test_top1, "seconds": round(self.seconds, 3)}


@dataclass
class Probe:
    """Scores of every probed layer, shallow to deep, and the best by validation accuracy."""

    scores: list[LayerScore]

    @property
    def best(self) -> LayerScore:
        """Highest validation top-1; ties go to the deeper layer (it needs no choice of depth)."""
        return max(reversed(self.scores), key=lambda score: score.val_top1)

    def score(self, layer: str) -> LayerScore:
        return next(score for score in self.scores if score.layer == layer)

    def to_dict(self) -> dict:
        return {"layers": [score.to_dict() for score in self.scores], "best": self.best.layer}


def fit_layer(target: Target, layer: str) -> LayerScore:
    """Fit the logistic regression on ``layer``'s training features; score it on val and test."""
    check_layer(target.model, layer)
    started = time.perf_counter()
    train_x, train_y = target.features(layer, "train")
    val_x, val_y = target.features(layer, "val")
    classifier, val_top1 = fit_linear(train_x, train_y, val_x, val_y, target.dataset.num_classes)
    test_x, test_y = target.features(layer, "test")
    return LayerScore(layer, train_x.shape[1], val_top1, classifier.accuracy(test_x, test_y),
                      time.perf_counter() - started, classifier)


def probe_layers(target: Target, layers: list[str] | None = None) -> Probe:
    """`fit_layer` on each of ``layers`` (default: the stages, then the classifier's input);
    the features of all layers are computed together, one forward pass per split."""
    layers = layers or layer_names(target.model)
    for layer in layers:
        check_layer(target.model, layer)
    for split in ("train", "val", "test"):
        target.features_of(layers, split)
    return Probe([fit_layer(target, layer) for layer in layers])
