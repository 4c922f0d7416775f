"""Loading and saving model weights safely.

`load_weights` reads PyTorch checkpoints (``.pth``/``.pt``/``.th``, zip or legacy pickle) with
``torch.load(weights_only=True)`` and safetensors files, finds the state dict inside the usual
containers, and reports by name what did not match. It never unpickles arbitrary objects: a
checkpoint that needs a class outside torch's weights-only allowlist is refused with the class
named, and only an explicit ``trusted=True`` from the caller unpickles it fully.

`save_weights` writes safetensors with metadata (architecture, classes, input normalisation,
cnnkit version) atomically: temporary file in the same folder, fsync, ``os.replace``. A reader
therefore sees either the old file or the complete new one, never a partial file.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import pickle
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

import cnnkit
from cnnkit.files import atomic_write

TORCH_SUFFIXES = (".pth", ".pt", ".th")
SAFETENSORS_SUFFIX = ".safetensors"

# Keys under which training scripts commonly store the state dict, tried in this order.
CONTAINER_KEYS = ("state_dict", "model", "model_state", "model_state_dict", "net")
# Prefixes added by wrappers: nn.DataParallel / DistributedDataParallel, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

# A safetensors header is JSON describing the tensors; real ones are a few hundred KiB.
MAX_SAFETENSORS_HEADER_BYTES = 16 * 2**20
SAFETENSORS_DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "U16": torch.uint16, "I16": torch.int16, "F16": torch.float16, "BF16": torch.bfloat16,
    "U32": torch.uint32, "I32": torch.int32, "F32": torch.float32,
    "U64": torch.uint64, "I64": torch.int64, "F64": torch.float64, "C64": torch.complex64,
}
# Modules whose functions in a pickle mean code execution rather than data.
CODE_EXECUTING_MODULES = {
    "os", "posix", "nt", "subprocess", "sys", "builtins", "__builtin__", "shutil", "socket",
    "importlib", "runpy", "pty", "code", "codeop", "ctypes", "webbrowser", "pickle", "marshal",
}
MAX_KEYS_LISTED = 10


class WeightsError(ValueError):
    """A weights file could not be used; the message names the file and what to do."""


class CorruptCheckpointError(WeightsError):
    """The file is truncated or damaged ("corrupt checkpoint PATH: ...")."""


class UnsafeCheckpointError(WeightsError):
    """Reading the file would need unpickling objects outside torch's weights-only allowlist."""


class WeightsMismatchError(WeightsError):
    """The file's keys or shapes do not fit the model (strict loading)."""


@dataclass
class LoadReport:
    """What `load_weights` did.

    ``loaded``: keys copied into the model. ``missing``: model keys absent from the file (the
    model keeps its initial values). ``unexpected``: file keys the model does not have.
    ``mismatched``: ``(key, shape in file, shape in model)`` for keys present in both with
    different shapes (not loaded). ``reset``: classifier keys left freshly initialised by
    ``reset_head=True``. ``metadata``: the safetensors metadata, empty for torch files.
    """

    path: Path
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every model key came from the file and every file key was used."""
        return not (self.missing or self.unexpected or self.mismatched or self.reset)

    def __str__(self) -> str:
        lines = [f"{self.path}: loaded {len(self.loaded)} tensors"]
        if self.reset:
            lines.append(f"  classifier left freshly initialised: {_list_keys(self.reset)}")
        if self.missing:
            lines.append(f"  missing from the file ({len(self.missing)}): {_list_keys(self.missing)}")
        if self.unexpected:
            lines.append(
                f"  unexpected in the file ({len(self.unexpected)}): {_list_keys(self.unexpected)}"
            )
        if self.mismatched:
            lines.append(
                f"  shape differs ({len(self.mismatched)}): {_list_shapes(self.mismatched)}"
            )
        return "\n".join(lines)


def load_weights(
    model: nn.Module,
    path: str | os.PathLike,
    strict: bool = True,
    reset_head: bool = False,
    trusted: bool = False,
) -> LoadReport:
    """Load a state dict from ``path`` into ``model`` in place and report what matched.

    Reads ``.pth``/``.pt``/``.th`` (``torch.load(map_location="cpu", weights_only=True)``) and
    ``.safetensors``; other suffixes are recognised by their first bytes. The state dict may be
    wrapped in a dict under ``state_dict``/``model``/``model_state``/``model_state_dict``/``net``
    and its keys may carry ``module.`` (DataParallel, DDP) or ``_orig_mod.`` (torch.compile)
    prefixes; both are removed when the model's own keys lack them. Batch-norm
    ``num_batches_tracked`` counters absent from old files are not counted as missing.

    strict: raise `WeightsMismatchError` unless every key matches by name and shape.
        ``strict=False`` loads what matches and reports the rest.
    reset_head: when the classifier (the submodule named by ``model.classifier_name``, e.g.
        ``"fc"``) has another shape in the file (another number of classes) or is absent from
        it, load nothing into it, so it keeps the fresh initialisation the model was built
        with, instead of failing; the report lists its keys under ``reset``.
    trusted: unpickle the file fully (``weights_only=False``). This can run arbitrary code:
        pass it only for files from a source you trust; it is never used automatically.

    Raises FileNotFoundError for a missing file, `WeightsError` (a ValueError) for a directory
    or an unknown format, `CorruptCheckpointError` for a truncated or damaged file,
    `UnsafeCheckpointError` for a pickle that needs non-allowlisted classes or would run code,
    and `WeightsMismatchError` for keys that do not fit under ``strict=True``.
    """
    path = existing_file(path)
    state, metadata = read_state_dict(path, trusted=trusted)
    return apply_state_dict(model, state, path, metadata, strict=strict, reset_head=reset_head)


def apply_state_dict(model: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike = "weights",
                     metadata: dict | None = None, strict: bool = True, reset_head: bool = False) -> LoadReport:
    """Load a state dict already read from ``path`` (`read_state_dict`) into ``model``, as
    `load_weights` does (wrapper prefixes removed, ``strict``, ``reset_head``): a file is read
    once however many times it is matched."""
    path = Path(path)
    model_state = model.state_dict()
    state = strip_wrapper_prefixes(state, model_state)
    head = _classifier_prefix(model) if reset_head else None

    report = LoadReport(path=path, metadata=metadata or {})
    to_load = {}
    for key, tensor in state.items():
        if key not in model_state:
            report.unexpected.append(key)
        elif tuple(tensor.shape) != tuple(model_state[key].shape):
            entry = (key, tuple(tensor.shape), tuple(model_state[key].shape))
            if head is not None and _is_under(key, head):
                report.reset.append(key)
            else:
                report.mismatched.append(entry)
        else:
            to_load[key] = tensor
    for key in model_state:
        if key in state or key.endswith("num_batches_tracked"):
            continue
        if head is not None and _is_under(key, head):
            report.reset.append(key)
        else:
            report.missing.append(key)

    if strict and (report.missing or report.unexpected or report.mismatched):
        raise WeightsMismatchError(_mismatch_message(model, path, report))
    if report.reset:
        # The whole classifier keeps the model's own initialisation, not half of it the file's.
        to_load = {k: v for k, v in to_load.items() if not _is_under(k, head)}
        report.reset = [k for k in model_state if _is_under(k, head)]
    model.load_state_dict(to_load, strict=False)
    report.loaded = list(to_load)
    return report


def read_state_dict(
    path: str | os.PathLike, trusted: bool = False, already_read=None
) -> tuple[dict[str, torch.Tensor], dict]:
    """Read the tensors of a weights file, unwrapped from its container, and its metadata.

    Returns ``(state_dict, metadata)``; metadata is the decoded safetensors metadata (see
    `read_metadata`) or ``{}`` for torch files. ``already_read``: the object `torch_file_or_none`
    gave for this torch file, unwrapped instead of reading the file again. Raises as
    `load_weights` does.
    """
    path = existing_file(path)
    if already_read is not None:
        return _unwrap_state_dict(already_read, path), {}
    if _format_of(path) == "safetensors":
        header, state = _read_safetensors(path, with_tensors=True)
        return state, _decode_metadata(header.get("__metadata__") or {})
    checkpoint = load_torch_file(path, trusted)
    return _unwrap_state_dict(checkpoint, path), {}


def torch_file_or_none(path: str | os.PathLike):
    """What a torch checkpoint holds, read with ``weights_only=True``; None, without reading it,
    for a safetensors file (which `read_state_dict` reads with cnnkit's own header checks)."""
    path = existing_file(path)
    return None if _format_of(path) == "safetensors" else load_torch_file(path, trusted=False)


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``model``'s state dict to a safetensors file with metadata, atomically.

    The metadata records ``architecture`` (``model.architecture`` if set, else the class
    name), ``num_classes`` (from the classifier when ``model.classifier_name`` is set),
    ``cnnkit_version``, and whatever ``metadata`` adds or overrides, e.g. ``class_names``,
    ``mean`` and ``std`` of the input normalisation. Values are stored as JSON;
    `read_metadata` gives them back with their types.

    The file is written to a temporary file in the same folder, flushed to disk (fsync) and
    renamed over ``path`` (``os.replace``), so an interruption leaves the old file intact and
    never a partial file under ``path``. Tensors that share memory are stored as copies.
    Returns the path written. Raises `WeightsError` when ``path`` does not end in
    ``.safetensors``, FileNotFoundError when its folder does not exist.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != SAFETENSORS_SUFFIX:
        raise WeightsError(f"{path}: save_weights writes safetensors; name the file *.safetensors")
    tensors, seen_storage = {}, set()
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in seen_storage:  # safetensors refuses tensors that share memory
            tensor = tensor.clone()
        seen_storage.add(storage)
        tensors[key] = tensor
    fields = _default_metadata(model)
    fields.update(metadata or {})
    encoded = {}
    for key, value in fields.items():
        try:
            encoded[str(key)] = json.dumps(value)
        except TypeError as error:
            raise WeightsError(
                f"{path}: metadata {key!r}: {error}; pass JSON values (str, numbers, lists, dicts)"
            ) from None

    with atomic_write(path) as temporary:
        save_file(tensors, str(temporary), metadata=encoded)
    return path


def read_metadata(path: str | os.PathLike) -> dict:
    """Return the metadata of a safetensors file, JSON values decoded (strings otherwise).

    Reads only the validated header, not the tensors. Raises `WeightsError` for a file that is
    not safetensors (torch checkpoints carry no metadata) and as `load_weights` otherwise.
    """
    path = existing_file(path)
    if _format_of(path) != "safetensors":
        raise WeightsError(
            f"{path}: not a safetensors file, so it carries no metadata; "
            "re-save it with cnnkit.models.weights.save_weights"
        )
    header, _ = _read_safetensors(path, with_tensors=False)
    return _decode_metadata(header.get("__metadata__") or {})


# --- reading ------------------------------------------------------------------------------


def existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        found = sorted(
            p.name for p in path.iterdir() if p.suffix in TORCH_SUFFIXES + (SAFETENSORS_SUFFIX,)
        )
        hint = f"; weights files in it: {', '.join(found[:5])}" if found else ""
        raise WeightsError(f"{path} is a directory, not a weights file{hint}")
    if not path.exists():
        raise FileNotFoundError(f"weights file not found: {path}")
    return path


def _format_of(path: Path) -> str:
    """'torch' or 'safetensors', from the suffix or, for other suffixes, the first bytes."""
    if path.suffix == SAFETENSORS_SUFFIX:
        return "safetensors"
    if path.suffix in TORCH_SUFFIXES:
        return "torch"
    with open(path, "rb") as file:
        start = file.read(9)
    if start[:2] == b"PK" or start[:1] == b"\x80":  # zip archive, or a pickle (protocol >= 2)
        return "torch"
    if len(start) == 9 and start[8:9] == b"{":  # 8-byte header length, then the JSON header
        return "safetensors"
    raise WeightsError(
        f"{path}: unknown weights format; expected a torch checkpoint (.pth, .pt, .th) "
        "or a .safetensors file"
    )


def load_torch_file(path: Path, trusted: bool):
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as error:
        global_name = _refused_global(str(error))
        if global_name is None:
            raise CorruptCheckpointError(
                f"corrupt checkpoint {path}: not readable as a torch checkpoint "
                f"({_unpickler_detail(str(error))})"
            ) from None
        blocked = "is blocked" in str(error)
        raise UnsafeCheckpointError(_unsafe_message(path, global_name, blocked)) from None
    except PermissionError:
        raise
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError, struct.error) as error:
        reason = str(error).split(". ")[0] or type(error).__name__
        raise CorruptCheckpointError(
            f"corrupt checkpoint {path}: {reason} (the file is truncated or damaged; "
            "re-download or re-save it)"
        ) from None


def _refused_global(message: str) -> str | None:
    """The ``module.name`` that torch's weights-only unpickler refused, if it names one."""
    match = re.search(r"GLOBAL ([A-Za-z_][\w.]*)", message)
    if match is None:
        return None
    name = match.group(1)
    # A truncated file can cut a name short ("collections."): that is damage, not a class.
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", name):
        return None
    return name


def _unsafe_message(path: Path, global_name: str, blocked: bool) -> str:
    if blocked or global_name.split(".")[0] in CODE_EXECUTING_MODULES:
        return (
            f"{path}: refused: unpickling it would call {global_name}, i.e. run code, "
            "not load weights. Nothing was executed. Do not load this file."
        )
    return (
        f"{path}: refused: the checkpoint needs class {global_name}, which torch's weights-only "
        "loader does not allow (unpickling it could run arbitrary code). Nothing was executed. "
        "If you trust the file's source, load it with load_weights(..., trusted=True), "
        "or re-save only its state_dict."
    )


def _unpickler_detail(message: str) -> str:
    detail = message.split("WeightsUnpickler error:")[-1]
    detail = detail.split("Check the documentation of torch.load")[0]
    return " ".join(detail.split()) or "unpickling failed"


def _unwrap_state_dict(checkpoint, path: Path) -> dict[str, torch.Tensor]:
    """Descend through container dicts (and, for trusted files, modules) to the tensors."""
    while True:
        if isinstance(checkpoint, nn.Module):
            return checkpoint.state_dict()
        if not isinstance(checkpoint, Mapping):
            raise WeightsError(
                f"{path}: holds a {type(checkpoint).__name__}, not a state dict; "
                "save model.state_dict() instead"
            )
        inner = next(
            (checkpoint[k] for k in CONTAINER_KEYS
             if isinstance(checkpoint.get(k), (Mapping, nn.Module))),
            None,
        )
        if inner is None:
            break
        checkpoint = inner
    tensors = {key: value for key, value in checkpoint.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise WeightsError(
            f"{path}: no tensors found; top-level keys are {_list_keys(list(map(str, checkpoint)))} "
            f"and none of {', '.join(CONTAINER_KEYS)} holds a state dict"
        )
    return tensors


def _read_safetensors(path: Path, with_tensors: bool) -> tuple[dict, dict[str, torch.Tensor]]:
    """Parse a safetensors file, checking its header against the file before trusting it.

    Layout: 8-byte little-endian header length N, N bytes of JSON
    ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``, then
    the data; offsets are relative to the data start and must lie inside it without overlap.
    Only N bytes (at most `MAX_SAFETENSORS_HEADER_BYTES`) are read into memory before the
    checks pass; tensors are then copied out of a private memory map of the same open file,
    so a concurrent ``os.replace`` of ``path`` cannot mix two files. Returns
    ``(header, tensors)``; tensors is empty unless ``with_tensors``.
    """
    corrupt = f"corrupt checkpoint {path}"
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size < 8:
            raise CorruptCheckpointError(
                f"{corrupt}: {size} bytes, shorter than the 8-byte header length"
            )
        (header_bytes,) = struct.unpack("<Q", file.read(8))
        if header_bytes > MAX_SAFETENSORS_HEADER_BYTES:
            raise CorruptCheckpointError(
                f"{corrupt}: header length {header_bytes} bytes exceeds the "
                f"{MAX_SAFETENSORS_HEADER_BYTES}-byte limit; not a valid safetensors file"
            )
        if 8 + header_bytes > size:
            raise CorruptCheckpointError(
                f"{corrupt}: header of {header_bytes} bytes runs past the end of the "
                f"{size}-byte file (truncated?)"
            )
        header = _parse_header(file.read(header_bytes), corrupt)
        data_start = 8 + header_bytes
        spans = _checked_spans(header, size - data_start, corrupt)
        if not (with_tensors and spans):
            return header, {}
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY) as mapped:
            tensors = {}
            for begin, end, name in spans:
                entry = header[name]
                dtype = SAFETENSORS_DTYPES.get(entry["dtype"])
                if dtype is None:
                    raise WeightsError(
                        f"{path}: tensor {name!r} has dtype {entry['dtype']!r}, which cnnkit "
                        f"cannot read (known: {', '.join(SAFETENSORS_DTYPES)})"
                    )
                flat = (
                    torch.frombuffer(mapped, dtype=dtype, count=math.prod(entry["shape"]),
                                     offset=data_start + begin)
                    if end > begin else torch.empty(0, dtype=dtype)
                )
                tensors[name] = flat.reshape(entry["shape"]).clone()
    return header, tensors


def _parse_header(raw: bytes, corrupt: str) -> dict:
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CorruptCheckpointError(f"{corrupt}: header is not valid JSON ({error})") from None
    if not isinstance(header, dict):
        raise CorruptCheckpointError(f"{corrupt}: header is not a JSON object")
    if not isinstance(header.get("__metadata__", {}), dict):
        raise CorruptCheckpointError(f"{corrupt}: __metadata__ is not a JSON object")
    return header


def _checked_spans(header: dict, data_bytes: int, corrupt: str) -> list[tuple[int, int, str]]:
    """``(begin, end, name)`` of every tensor, sorted, none overlapping or out of range."""
    spans = sorted(
        (*_tensor_span(name, entry, data_bytes, corrupt), name)
        for name, entry in header.items()
        if name != "__metadata__"
    )
    for (_, previous_end, previous), (begin, _, name) in zip(spans, spans[1:]):
        if begin < previous_end:
            raise CorruptCheckpointError(
                f"{corrupt}: tensors {previous!r} and {name!r} overlap in the file"
            )
    return spans


def _tensor_span(name: str, entry, data_bytes: int, corrupt: str) -> tuple[int, int]:
    """``(begin, end)`` of one tensor's bytes, checked against its dtype, shape and the file."""
    if not isinstance(entry, dict):
        raise CorruptCheckpointError(f"{corrupt}: tensor {name!r}: entry is not a JSON object")
    offsets, shape = entry.get("data_offsets"), entry.get("shape")
    if not (
        isinstance(offsets, list) and len(offsets) == 2
        and all(isinstance(o, int) and o >= 0 for o in offsets)
        and isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
    ):
        raise CorruptCheckpointError(
            f"{corrupt}: tensor {name!r}: data_offsets {offsets!r} / shape {shape!r} malformed"
        )
    begin, end = offsets
    if not begin <= end <= data_bytes:
        raise CorruptCheckpointError(
            f"{corrupt}: tensor {name!r}: bytes [{begin}, {end}) lie outside the "
            f"{data_bytes}-byte data section (truncated?)"
        )
    dtype = SAFETENSORS_DTYPES.get(entry.get("dtype"))
    if dtype is not None and end - begin != math.prod(shape) * dtype.itemsize:
        raise CorruptCheckpointError(
            f"{corrupt}: tensor {name!r}: {end - begin} bytes do not hold shape {shape} "
            f"of {entry.get('dtype')}"
        )
    return begin, end


def _decode_metadata(metadata: dict) -> dict:
    decoded = {}
    for key, value in metadata.items():
        try:
            decoded[key] = json.loads(value)
        except (TypeError, json.JSONDecodeError):  # written by another tool: keep the string
            decoded[key] = value
    return decoded


# --- matching -----------------------------------------------------------------------------


def strip_wrapper_prefixes(state: dict, model_state: dict) -> dict:
    """Remove ``module.`` / ``_orig_mod.`` while every file key has it and no model key does."""
    changed = True
    while changed and state:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state) and not any(
                k.startswith(prefix) for k in model_state
            ):
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


def _classifier_prefix(model: nn.Module) -> str:
    name = getattr(model, "classifier_name", None)
    if not name:
        raise WeightsError(
            f"reset_head needs the model to name its classifier: {type(model).__name__} has no "
            "classifier_name attribute (e.g. 'fc'); use strict=False instead"
        )
    try:
        model.get_submodule(name)
    except AttributeError:
        raise WeightsError(
            f"{type(model).__name__}.classifier_name is {name!r}, but the model has no such submodule"
        ) from None
    return name


def _is_under(key: str, module_name: str) -> bool:
    return key.startswith(module_name + ".")


def _mismatch_message(model: nn.Module, path: Path, report: LoadReport) -> str:
    head = getattr(model, "classifier_name", None)
    lines = [f"{path} does not fit {type(model).__name__}:"]
    head_shapes = [m for m in report.mismatched if head and _is_under(m[0], head)]
    if head_shapes:
        file_classes, model_classes = head_shapes[0][1][0], head_shapes[0][2][0]
        lines.append(
            f"  the classifier '{head}' has {file_classes} outputs in the file but {model_classes} "
            f"in the model: {_list_shapes(head_shapes)}"
        )
    others = [m for m in report.mismatched if m not in head_shapes]
    if others:
        lines.append(f"  shape differs ({len(others)}): {_list_shapes(others)}")
    if report.missing:
        lines.append(f"  missing from the file ({len(report.missing)}): {_list_keys(report.missing)}")
    if report.unexpected:
        lines.append(
            f"  unexpected in the file ({len(report.unexpected)}): {_list_keys(report.unexpected)}"
        )
    if head_shapes:
        lines.append(
            "  to load everything else and start the classifier fresh for another number of "
            "classes, pass reset_head=True (--reset-head on the command line)"
        )
    else:
        lines.append("  pass strict=False to load only the tensors that match")
    return "\n".join(lines)


def _list_keys(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_KEYS_LISTED])
    return shown + (f", ... and {len(keys) - MAX_KEYS_LISTED} more" if len(keys) > MAX_KEYS_LISTED else "")


def _list_shapes(entries) -> str:
    return _list_keys([f"{key} (file {tuple(a)} vs model {tuple(b)})" for key, a, b in entries])


# --- writing ------------------------------------------------------------------------------


def _default_metadata(model: nn.Module) -> dict:
    metadata = {
        "architecture": getattr(model, "architecture", None) or type(model).__name__,
        "cnnkit_version": cnnkit.__version__,
    }
    head_name = getattr(model, "classifier_name", None)
    if head_name:
        head = model.get_submodule(head_name)
        classes = getattr(head, "out_features", None) or getattr(head, "out_channels", None)
        if classes is not None:
            metadata["num_classes"] = classes
    return metadata

