"""The scenario advisor: the lecture's transfer-learning table, read from the user's data.

                       similar to the pretraining data     different from it
    small dataset      linear classifier on the top        classifier on an intermediate layer
    large dataset      fine-tune the top layers            fine-tune the entire network

Both axes are measured, without the pretraining data:

- **Size**: training examples per class (the smallest class), small below
  `SMALL_PER_CLASS`.
- **Similarity**, two signals. (1) Batch-norm statistics: each batch-norm layer stored the
  mean μ_r and variance σ_r² of its input channels over the pretraining data. For the target
  images we measure μ_t, σ_t² of the same inputs and average over channels and layers the
  Kullback-Leibler divergence of the Gaussians,

      KL = log(σ_r / σ_t) + (σ_t² + (μ_t − μ_r)²) / (2 σ_r²) − ½,

  which is 0 when the target's activations look like the pretraining data's. (2) The linear
  probe (`cnnkit.transfer.probe`): when the classifier on some stage beats the one on the
  classifier's input by more than `PROBE_MARGIN` (validation accuracy), the top layers are
  too specific to the old task. The data is "similar" when the divergence is below `BN_DIVERGENCE_LIMIT` and
  the probe peaks at the top; a network without batch norm is judged by the probe alone.

The thresholds come from `benchmarks/transfer.py` (see docs/transfer.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from cnnkit.data.dataset import ImageSet
from cnnkit.data.transforms import normalize
from cnnkit.train.batches import iterate_batches
from cnnkit.transfer.features import HEAD_INPUT
from cnnkit.transfer.probe import Probe, Target, prepare, probe_layers

SMALL_PER_CLASS = 100
BN_DIVERGENCE_LIMIT = 0.1
PROBE_MARGIN = 0.02
BN_IMAGES = 512

STRATEGIES = {
    ("small", "similar"): "linear",
    ("small", "different"): "intermediate",
    ("large", "similar"): "finetune-top",
    ("large", "different"): "finetune-all",
}
ADVICE_TEXT = {
    "linear": "train a linear classifier on the pretrained features",
    "intermediate": "train a linear classifier on an intermediate layer's features",
    "finetune-top": "fine-tune the top layers of the network",
    "finetune-all": "fine-tune the entire network",
}


@dataclass
class Advice:
    """The advisor's reading of the table: quadrant, strategy (and layer), the measurements
    behind it and a one-paragraph explanation."""

    size: str
    similarity: str
    strategy: str
    layer: str | None
    measurements: dict
    explanation: str
    probe: Probe | None = field(default=None, repr=False)

    @property
    def quadrant(self) -> str:
        return f"{self.size}, {self.similarity}"

    def to_dict(self) -> dict:
        return {"quadrant": self.quadrant, "size": self.size, "similarity": self.similarity,
                "strategy": self.strategy, "layer": self.layer, "measurements": self.measurements,
                "explanation": self.explanation}


@torch.no_grad()
def batchnorm_divergence(model: nn.Module, images: ImageSet, mean, std, max_images: int = BN_IMAGES) -> dict | None:
    """Mean KL divergence between the target's and the stored batch-norm input statistics.

    Runs at most ``max_images`` images (a seeded sample) through ``model`` in eval mode and
    accumulates Σx, Σx² of every batch-norm layer's input per channel. Returns
    ``{"mean": D, "layers": {name: D_layer}}`` or None for a model without batch norm.
    """
    layers = {name: module for name, module in model.named_modules()
              if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None}
    if not layers:
        return None
    sums: dict[str, list[Tensor]] = {}

    def hook(name):
        def accumulate(module, inputs):
            x = inputs[0].double().transpose(0, 1).flatten(1)  # (C, N·H·W)
            stats = torch.stack([x.sum(1), x.square().sum(1), torch.full_like(x[:, 0], x.shape[1])])
            sums[name] = stats if name not in sums else sums[name] + stats
        return accumulate

    handles = [module.register_forward_pre_hook(hook(name)) for name, module in layers.items()]
    model.eval()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:max_images]
    try:
        for x, _ in iterate_batches(images, order, 256):
            model(normalize(x, mean, std).contiguous(memory_format=torch.channels_last))
    finally:
        for handle in handles:
            handle.remove()
    per_layer = {}
    for name, module in layers.items():
        total, squares, count = sums[name]
        mu_t = total / count
        var_t = (squares / count - mu_t.square()).clamp_min(0) + module.eps
        mu_r, var_r = module.running_mean.double(), module.running_var.double() + module.eps
        kl = 0.5 * (var_r / var_t).log() + (var_t + (mu_t - mu_r).square()) / (2 * var_r) - 0.5
        per_layer[name] = float(kl.mean())
    return {"mean": sum(per_layer.values()) / len(per_layer), "layers": per_layer}


def advise(model, data=None, *, probe: Probe | None = None, cache_dir: str | os.PathLike | None = "default",
           architecture: str | None = None) -> Advice:
    """Which transfer strategy suits ``data`` for the pretrained ``model``, and why.

    model: a `Target` (then ``data`` is ignored), a `Pretrained`, or a weights file / run
    folder / checkpoint path; data: a dataset name, path or `Dataset` (see `prepare`).
    probe: a finished `probe_layers` result to reuse (computed otherwise; features are cached).
    """
    target = model if isinstance(model, Target) else prepare(model, data, architecture=architecture,
                                                            cache_dir=cache_dir)
    dataset = target.dataset
    counts = dataset.train.class_counts(dataset.num_classes).tolist()
    per_class = min(counts)
    size = "small" if per_class < SMALL_PER_CLASS else "large"

    divergence = batchnorm_divergence(target.model, dataset.train, target.mean, target.std)
    probe = probe or probe_layers(target)
    best, top = probe.best, probe.score(HEAD_INPUT)
    peak_at_top = best.val_top1 - top.val_top1 <= PROBE_MARGIN
    bn_similar = divergence is None or divergence["mean"] < BN_DIVERGENCE_LIMIT
    similarity = "similar" if bn_similar and peak_at_top else "different"
    strategy = STRATEGIES[(size, similarity)]
    layer = (best.layer if strategy == "intermediate" else HEAD_INPUT if strategy == "linear" else None)

    measurements = {
        "examples_per_class": {"min": per_class, "mean": round(sum(counts) / len(counts), 1),
                               "threshold": SMALL_PER_CLASS},
        "classes": dataset.num_classes,
        "batchnorm_divergence": None if divergence is None else {
            "mean": round(divergence["mean"], 4), "limit": BN_DIVERGENCE_LIMIT,
            "layers": {name: round(value, 4) for name, value in divergence["layers"].items()}},
        "probe": probe.to_dict(),
        "probe_peak": best.layer,
        "probe_peak_at_top": peak_at_top,
        "adaptations": list(target.notes),
    }
    explanation = _explain(size, similarity, strategy, per_class, divergence, probe, peak_at_top, target)
    return Advice(size, similarity, strategy, layer, measurements, explanation, probe)


def _explain(size, similarity, strategy, per_class, divergence, probe, peak_at_top, target) -> str:
    best, top = probe.best, probe.score(HEAD_INPUT)
    source = f"{target.pretrained.architecture} from {target.pretrained.source.name}"
    parts = [
        f"{target.dataset.name} has {per_class} training images in its smallest class "
        f"({'under' if size == 'small' else 'at least'} the {SMALL_PER_CLASS} that count as large), "
        f"so it is {size}."
    ]
    if divergence is None:
        parts.append(f"{source} has no batch norm, so similarity rests on the probe alone.")
    else:
        verdict = "close to" if divergence["mean"] < BN_DIVERGENCE_LIMIT else "far from"
        parts.append(
            f"Its activations are {verdict} the statistics the batch-norm layers of {source} stored "
            f"(mean KL divergence {divergence['mean']:.2f}, limit {BN_DIVERGENCE_LIMIT}).")
    if peak_at_top:
        parts.append(f"A linear probe on the classifier's input ({top.val_top1:.1%} validation accuracy) is within "
                     f"{PROBE_MARGIN:.0%} of the best layer ({best.layer}, {best.val_top1:.1%}), so the top features carry over.")
    else:
        parts.append(f"A linear probe peaks at {best.layer} ({best.val_top1:.1%} validation accuracy) and falls to "
                     f"{top.val_top1:.1%} at the classifier's input: the top layers are specific to the old task.")
    parts.append(f"{size.capitalize()} and {similarity}: {ADVICE_TEXT[strategy]} ({strategy}"
                 + (f", layer {best.layer}" if strategy == "intermediate" else "") + ").")
    return " ".join(parts)
