"""Fixed features of a pretrained network, computed once in batches and cached on disk.

Feature extraction (the lecture's first transfer strategy) removes the last fully connected
layer and keeps every other layer fixed: an image's feature vector is the input of the
classifier (``HEAD_INPUT``, e.g. the 64 globally pooled channels of a CIFAR ResNet-20, the 512
of a ResNet-18). Intermediate-layer features are the output of any named submodule (a stage
such as ``layer2``), average-pooled to a fixed s×s grid and flattened, with s chosen so that a
layer of C channels gives about `FEATURE_DIMENSIONS` numbers: s = clamp(round(√(256 / C)), 1, H).

`FeatureCache` stores each (weights, layer, grid, input adaptation, data split) as one
safetensors file named by the SHA-256 of that key, so a second probe, a second strategy or a
second command on the same data reads features instead of running the network.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.data.dataset import ImageSet
from cnnkit.data.transforms import normalize
from cnnkit.files import atomic_write
from cnnkit.models.features import extract_features
from cnnkit.train.batches import iterate_batches

HEAD_INPUT = "head-input"
"""Layer name of the classifier's input: the features the pretrained classifier read."""

FEATURE_DIMENSIONS = 256
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$CNNKIT_CACHE/features``, else ``~/.cache/cnnkit/features``."""
    root = os.environ.get("CNNKIT_CACHE") or Path.home() / ".cache" / "cnnkit"
    return Path(root) / "features"


def layer_names(model: nn.Module) -> list[str]:
    """The layers a probe compares, shallow to deep: the model's stages, then ``HEAD_INPUT``."""
    return [*getattr(model, "stage_names", ()), HEAD_INPUT]


def check_layer(model: nn.Module, layer: str) -> None:
    """Raise ValueError naming the valid layers when ``layer`` is not a submodule of ``model``."""
    if layer == HEAD_INPUT:
        return
    try:
        model.get_submodule(layer)
    except AttributeError:
        modules = [name for name, _ in model.named_modules() if name]
        raise ValueError(
            f"{getattr(model, 'architecture', type(model).__name__)} has no layer {layer!r}; its stages are "
            f"{', '.join(layer_names(model))}, and any submodule works: {', '.join(modules[:40])}"
            + (f", … ({len(modules)} in all)" if len(modules) > 40 else "")
        ) from None


def grid_size(channels: int, height: int) -> int:
    """s = clamp(round(√(FEATURE_DIMENSIONS / C)), 1, H): the pooled grid of a C-channel map."""
    return max(1, min(height, round(math.sqrt(FEATURE_DIMENSIONS / channels))))


@torch.no_grad()
def compute_features(
    model: nn.Module, images: ImageSet, layer: str, mean, std, batch_size: int = 256,
) -> Tensor:
    """Features ``(N, D)`` float32 of every image of ``images`` at ``layer``, model in eval mode.

    Images are normalised by ``mean``/``std``; ``HEAD_INPUT`` captures the classifier's input
    (a forward pre-hook), other layers are pooled by `pool_feature_map`.
    """
    check_layer(model, layer)
    model.eval()
    chunks = []
    for x, _ in iterate_batches(images, torch.arange(len(images)), batch_size):
        x = normalize(x, mean, std).contiguous(memory_format=torch.channels_last)
        chunks.append(_features_of_batch(model, x, layer))
    if not chunks:
        raise ValueError("no images to compute features of")
    return torch.cat(chunks)


def _features_of_batch(model: nn.Module, x: Tensor, layer: str) -> Tensor:
    if layer != HEAD_INPUT:
        return pool_feature_map(extract_features(model, x, [layer])[layer])
    captured = []

    def capture(module, inputs):
        captured.append(inputs[0].detach().float().flatten(1))  # (B, D)

    handle = model.get_submodule(model.classifier_name).register_forward_pre_hook(capture)
    try:
        model(x)
    finally:
        handle.remove()
    return captured[0]


def pool_feature_map(feature_map: Tensor) -> Tensor:
    """(B, C, H, W) → (B, C·s·s) by adaptive average pooling to s×s (`grid_size`); (B, D) unchanged."""
    if feature_map.dim() == 2:
        return feature_map.float()
    channels, height = feature_map.shape[1], feature_map.shape[2]
    side = grid_size(channels, height)
    return F.adaptive_avg_pool2d(feature_map.float(), side).flatten(1)  # (B, C s²)


def data_fingerprint(images: ImageSet) -> str:
    """SHA-256 of a split's pixels and labels (in memory) or of its files' paths, sizes and times."""
    digest = hashlib.sha256()
    digest.update(images.labels.numpy().tobytes())
    if images.in_memory:
        digest.update(str((images.images.dtype, tuple(images.images.shape))).encode())
        digest.update(images.images.contiguous().numpy().tobytes())
    else:
        digest.update(str((images.image_size, images.channels)).encode())
        for path in images.files:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class FeatureCache:
    """Features on disk under ``directory``, one safetensors file per key; None: no caching."""

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.hits = 0
        self.misses = 0

    def features(self, model: nn.Module, images: ImageSet, layer: str, mean, std, weights_key: str) -> Tensor:
        """``compute_features(...)``, read from the cache when the same key was computed before.

        The key hashes ``weights_key`` (the weights file's SHA-256 and any input adaptation),
        the layer, the grid rule, the normalisation and `data_fingerprint(images)`.
        """
        key = self.key(images, layer, mean, std, weights_key)
        path = self.directory / f"{key}.safetensors" if self.directory is not None else None
        if path is not None and path.exists():
            from safetensors.torch import load_file

            try:
                stored = load_file(str(path))
                self.hits += 1
                return stored["features"]
            except Exception:  # a damaged cache file is recomputed and replaced
                pass
        self.misses += 1
        features = compute_features(model, images, layer, mean, std)
        if path is not None:
            from safetensors.torch import save_file

            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as temporary:
                save_file({"features": features.contiguous()}, str(temporary), metadata={"layer": layer})
        return features

    @staticmethod
    def key(images: ImageSet, layer: str, mean, std, weights_key: str) -> str:
        fields = {"version": CACHE_VERSION, "weights": weights_key, "layer": layer, "dims": FEATURE_DIMENSIONS,
                  "mean": [round(float(m), 6) for m in mean], "std": [round(float(s), 6) for s in std],
                  "data": data_fingerprint(images)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:40]
