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
    model: nn.Module, images: ImageSet, layers: str | list[str], mean, std, batch_size: int = 256,
) -> Tensor | dict[str, Tensor]:
    """Features ``(N, D)`` float32 of every image of ``images`` at ``layers``, model in eval mode.

    One forward pass per batch serves every layer asked. Images are normalised by
    ``mean``/``std``; ``HEAD_INPUT`` is the classifier's input (a forward pre-hook), other
    layers are their outputs pooled by `pool_feature_map`. A single layer name gives one
    tensor, a list a dict by name.
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    for layer in names:
        check_layer(model, layer)
    model.eval()
    chunks: dict[str, list[Tensor]] = {layer: [] for layer in names}
    for x, _ in iterate_batches(images, torch.arange(len(images)), batch_size):
        x = normalize(x, mean, std).contiguous(memory_format=torch.channels_last)
        for layer, features in _features_of_batch(model, x, names).items():
            chunks[layer].append(features)
    if not len(images):
        raise ValueError("no images to compute features of")
    features = {layer: torch.cat(parts) for layer, parts in chunks.items()}
    return features[layers] if isinstance(layers, str) else features


def _features_of_batch(model: nn.Module, x: Tensor, layers: list[str]) -> dict[str, Tensor]:
    inner = [layer for layer in layers if layer != HEAD_INPUT]
    if HEAD_INPUT not in layers:  # the forward pass stops after the deepest layer asked
        return {name: pool_feature_map(out) for name, out in extract_features(model, x, inner).items()}
    captured = {}

    def capture_output(name):
        def hook(module, inputs, output):
            captured.setdefault(name, pool_feature_map(output.detach()))
        return hook

    def capture_input(module, inputs):
        captured[HEAD_INPUT] = inputs[0].detach().float().flatten(1)  # (B, D)

    handles = [model.get_submodule(name).register_forward_hook(capture_output(name)) for name in inner]
    handles.append(model.get_submodule(model.classifier_name).register_forward_pre_hook(capture_input))
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {layer: captured[layer] for layer in layers}


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
        """``compute_features(...)`` of one layer, read from the cache when computed before."""
        return self.many(model, images, [layer], mean, std, weights_key)[layer]

    def many(self, model: nn.Module, images: ImageSet, layers: list[str], mean, std, weights_key: str) -> dict[str, Tensor]:
        """Features of several layers; the ones not cached are computed in one pass and stored.

        A layer's key hashes ``weights_key`` (the weights file's SHA-256 and any input
        adaptation), the layer, the grid rule, the normalisation and `data_fingerprint(images)`.
        A damaged cache file is recomputed and replaced.
        """
        from safetensors.torch import load_file, save_file

        data_key = data_fingerprint(images)
        paths = {layer: self._path(data_key, layer, mean, std, weights_key) for layer in layers}
        found = {}
        for layer, path in paths.items():
            if path is not None and path.exists():
                try:
                    found[layer] = load_file(str(path))["features"]
                    self.hits += 1
                except Exception:
                    pass
        missing = [layer for layer in layers if layer not in found]
        if missing:
            self.misses += len(missing)
            computed = compute_features(model, images, missing, mean, std)
            for layer, features in computed.items():
                path = paths[layer]
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_write(path) as temporary:
                        save_file({"features": features.contiguous()}, str(temporary), metadata={"layer": layer})
            found.update(computed)
        return {layer: found[layer] for layer in layers}

    def _path(self, data_key: str, layer: str, mean, std, weights_key: str) -> Path | None:
        if self.directory is None:
            return None
        fields = {"version": CACHE_VERSION, "weights": weights_key, "layer": layer, "dims": FEATURE_DIMENSIONS,
                  "mean": [round(float(m), 6) for m in mean], "std": [round(float(s), 6) for s in std],
                  "data": data_key}
        return self.directory / (hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:40] + ".safetensors")
