"""Loading detector weights: torchvision's files as they are.

torchvision writes ``fasterrcnn_resnet50_fpn`` state dicts from models with ordinary batch norm
(random or ImageNet-initialised backbones, with ``num_batches_tracked`` counters) or frozen batch
norm (its COCO files, without). cnnkit's detector backbones use frozen batch norm, which has no
counter, so `load_detector_weights` drops the counters that the model has no place for and
otherwise loads as strictly as `cnnkit.models.weights.load_weights` (same safe reading).
"""

from __future__ import annotations

import os

from torch import nn

from cnnkit.models.weights import LoadReport, WeightsMismatchError, existing_file, read_state_dict


def load_detector_weights(model: nn.Module, path: str | os.PathLike, strict: bool = True,
                          trusted: bool = False, state: dict | None = None) -> LoadReport:
    """Load a detector state dict (``torch.save`` file or safetensors, read with
    ``weights_only=True`` unless ``trusted``) into ``model``; ``state``: the file's tensors when
    already read (`read_state_dict`). Raises `WeightsMismatchError` (a ValueError) listing
    missing, unexpected and mis-shaped keys under ``strict``."""
    path = existing_file(path)
    state, metadata = (state, {}) if state is not None else read_state_dict(path, trusted=trusted)
    model_state = model.state_dict()
    state = {key: value for key, value in state.items()
             if key in model_state or not key.endswith("num_batches_tracked")}
    report = LoadReport(path=path, metadata=metadata)
    report.unexpected = [key for key in state if key not in model_state]
    report.missing = [key for key in model_state if key not in state and not key.endswith("num_batches_tracked")]
    report.mismatched = [(key, tuple(state[key].shape), tuple(model_state[key].shape)) for key in state
                         if key in model_state and state[key].shape != model_state[key].shape]
    if strict and (report.missing or report.unexpected or report.mismatched):
        listing = "; ".join(f"{name} ({len(keys)}): {', '.join(map(str, keys[:5]))}" for name, keys in
                            (("missing", report.missing), ("unexpected", report.unexpected),
                             ("mis-shaped", report.mismatched)) if keys)
        raise WeightsMismatchError(f"{path} does not fit {type(model).__name__}: {listing}; a model for another "
                                   "number of classes needs num_classes set to match the file")
    to_load = {key: value for key, value in state.items()
               if key in model_state and value.shape == model_state[key].shape}
    model.load_state_dict(to_load, strict=False)
    report.loaded = list(to_load)
    return report
