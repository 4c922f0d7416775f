"""Exporting a trained model for use outside cnnkit: ONNX, TorchScript or safetensors.

Every export is checked before it is reported done: the exported model is loaded back and run
on a batch of a *different* size than the one traced (so a batch size frozen into the graph is
caught), and its outputs must equal the PyTorch model's within ``atol`` (1e-4 by default,
relative to the largest output when that exceeds 1). A
file that fails the check is never left under the requested name.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnkit.files import atomic_write
from cnnkit.models.weights import load_weights, save_weights

EXPORT_FORMATS = ("onnx", "torchscript", "safetensors")


@dataclass(frozen=True)
class ExportReport:
    """Where the export went and how closely it reproduces the PyTorch model."""

    path: Path
    format: str
    max_abs_difference: float
    checked_batch_size: int


def _reference_outputs(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(batch).float()


def _export_onnx(model: nn.Module, example: torch.Tensor, target: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates its passes on stdout
        program = torch.onnx.export(
            model, (example,), dynamo=True, input_names=["images"], output_names=["logits"],
            dynamic_shapes=({0: batch},), verbose=False,
        )
    program.save(str(target))


def _run_onnx(path: Path, batch: torch.Tensor) -> torch.Tensor:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    return torch.from_numpy(output)


@contextlib.contextmanager
def _torchscript_deprecation_hushed():
    """PyTorch 2.14 deprecates TorchScript in favour of torch.export; the format is kept for the
    deployment stacks that still read it, without a warning on every call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        yield


def _export_torchscript(model: nn.Module, example: torch.Tensor, target: Path) -> None:
    with _torchscript_deprecation_hushed(), torch.no_grad():
        torch.jit.save(torch.jit.trace(model, example, check_trace=False), str(target))


def _run_torchscript(path: Path, batch: torch.Tensor) -> torch.Tensor:
    with _torchscript_deprecation_hushed():
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return loaded(batch).float()


def _export_safetensors(model: nn.Module, path: Path, metadata: dict | None, check: torch.Tensor) -> torch.Tensor:
    """Save the weights, then load them into a zeroed copy of the model and run it."""
    save_weights(model, path, metadata)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for tensor in twin.state_dict().values():
            tensor.zero_()
    load_weights(twin, path)
    return _reference_outputs(twin, check)


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    input_size: tuple[int, int, int],
    format: str | None = None,
    metadata: dict | None = None,
    atol: float = 1e-4,
) -> ExportReport:
    """Export ``model`` (eval mode, CPU) for inputs ``(N, *input_size)`` and verify the file.

    ``format`` is ``"onnx"`` (dynamic batch axis, checked with onnxruntime), ``"torchscript"``
    (traced) or ``"safetensors"`` (weights with ``metadata``, checked by loading them into a
    zeroed copy of the model); by default it follows the suffix of ``path`` (.onnx, .pt,
    .safetensors). Raises ``ValueError`` naming the difference when the export disagrees with
    PyTorch by more than ``atol`` (times the largest output magnitude when that exceeds 1, as
    float32 rounding scales with it); nothing is left under ``path`` then.
    """
    path = Path(path)
    format = format or {".onnx": "onnx", ".pt": "torchscript", ".safetensors": "safetensors"}.get(path.suffix)
    if format not in EXPORT_FORMATS:
        raise ValueError(f"{path}: choose a format ({', '.join(EXPORT_FORMATS)}) or a .onnx, .pt or .safetensors name")
    model = model.to("cpu").eval()
    example, check = torch.rand(2, *input_size), torch.rand(3, *input_size)  # (N, C, H, W), two batch sizes
    expected = _reference_outputs(model, check)
    path.parent.mkdir(parents=True, exist_ok=True)

    scale = max(1.0, float(expected.abs().max()))  # float32 rounding grows with the outputs

    def verified(actual: torch.Tensor) -> float:
        difference = float((actual - expected).abs().max())
        if not difference <= atol * scale:
            raise ValueError(f"{path}: the {format} export differs from the PyTorch model by {difference:.2e} (> {atol:g}); not kept")
        return difference

    if format == "safetensors":
        try:
            difference = verified(_export_safetensors(model, path, metadata, check))
        except ValueError:
            path.unlink(missing_ok=True)
            raise
    else:
        export, run = {"onnx": (_export_onnx, _run_onnx), "torchscript": (_export_torchscript, _run_torchscript)}[format]
        with atomic_write(path) as temporary:
            export(model, example, temporary)
            difference = verified(run(temporary, check))
    return ExportReport(path, format, difference, check.shape[0])
