"""Per-layer summary of any network: output shapes, parameters, multiply-adds, receptive fields.

:func:`summarize` runs one forward pass on a zero input of batch size 1 with a forward hook on
every leaf module (a module without children) and on every module that holds parameters of its
own, and records one row per call: a module called twice (torchvision's ResNet blocks reuse one
ReLU) gives two rows, its parameters counted in the first.

Multiply-adds count the products of weights and inputs, the convention of the published
figures (torchvision's GFLOPS column, which counts a multiply-add once):

    convolution            H_out·W_out·K_h·K_w·(C_in/groups)·C_out   (any number of dimensions)
    transposed convolution H_in·W_in·K_h·K_w·(C_out/groups)·C_in
    fully connected        in_features·out_features (per position where applied to a sequence)

Every other layer (normalisation, activation, pooling, dropout) and any operation written in a
``forward`` (a residual sum, a concatenation) counts 0.

Receptive fields are propagated along tensors, per spatial direction, as (r, j): r input pixels
seen by one output, j input pixels between neighbouring outputs; the input has (1, 1). A
convolution or pooling layer of kernel K, stride s and dilation d composes by
:func:`cnnkit.ops.shapes.receptive_field` (r' = r + d(K-1)·j, j' = j·s); an adaptive pooling whose
input size n is a multiple of its output size o is a pooling with K = s = n/o; a layer that keeps
the spatial size (normalisation, activation, dropout) keeps (r, j). A tensor no layer produced —
a residual sum, a concatenation of branches, a reshape in ``forward`` — takes the largest field
among the layer outputs seen so far with the same spatial size, since a sum or concatenation sees
everything its largest branch sees. Anything else (a flattened vector, an upsampling, a transposed
convolution, an adaptive pooling with uneven windows) has no receptive field, nor has what follows.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd
from torch.nn.modules.pooling import _AdaptiveAvgPoolNd, _AdaptiveMaxPoolNd, _AvgPoolNd, _LPPoolNd, _MaxPoolNd
from torch.nn.modules.utils import _ntuple

from cnnkit.ops.shapes import Layer, receptive_field

Field = tuple[tuple[int, ...], tuple[int, ...]]  # (receptive field, jump) per spatial direction


@dataclass(frozen=True)
class LayerSummary:
    """One call of one layer: ``output_shape`` is per sample (no batch dimension), None if not a tensor."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    trainable_params: int
    frozen_params: int
    multiply_adds: int
    receptive_field: tuple[int, ...] | None
    jump: tuple[int, ...] | None


@dataclass(frozen=True)
class Summary:
    """The rows of :func:`summarize`, their totals, and renderings as a table and as a dict for JSON."""

    model: str
    input_size: tuple[int, ...]
    layers: tuple[LayerSummary, ...]

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def frozen_params(self) -> int:
        return sum(layer.frozen_params for layer in self.layers)

    @property
    def total_params(self) -> int:
        return self.trainable_params + self.frozen_params

    @property
    def multiply_adds(self) -> int:
        return sum(layer.multiply_adds for layer in self.layers)

    def to_dict(self) -> dict:
        """Plain lists, ints and strings: ``json.dumps(summary.to_dict())`` works."""
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "layers": [
                {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(layer).items()}
                for layer in self.layers
            ],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "frozen_params": self.frozen_params,
            "multiply_adds": self.multiply_adds,
        }

    def table(self) -> str:
        """A fixed-width text table, one line per row, then the totals."""
        header = ("Layer", "Type", "Output shape", "Params", "Frozen", "Mult-adds", "RF", "Jump")
        rows = [
            (
                layer.name,
                layer.type,
                _shape_text(layer.output_shape),
                f"{layer.trainable_params:,}",
                f"{layer.frozen_params:,}",
                f"{layer.multiply_adds:,}",
                _shape_text(layer.receptive_field, square=True),
                _shape_text(layer.jump, square=True),
            )
            for layer in self.layers
        ]
        widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
        numeric = {3, 4, 5, 6, 7}

        def line(row: tuple[str, ...]) -> str:
            cells = (cell.rjust(width) if column in numeric else cell.ljust(width) for column, (cell, width) in enumerate(zip(row, widths)))
            return "  ".join(cells).rstrip()

        rule = "-" * len(line(header))
        return "\n".join(
            [
                f"{self.model} on input {_shape_text(self.input_size)} (batch 1)",
                line(header),
                rule,
                *map(line, rows),
                rule,
                f"Parameters: {self.total_params:,} ({self.trainable_params:,} trainable, {self.frozen_params:,} frozen)",
                f"Multiply-adds: {self.multiply_adds:,} ({_scaled(self.multiply_adds)})",
            ]
        )

    __str__ = table


def _scaled(count: int) -> str:
    for factor, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if count >= factor:
            return f"{count / factor:.3g} {unit}"
    return str(count)


def _shape_text(shape: tuple[int, ...] | None, square: bool = False) -> str:
    if shape is None:
        return "-"
    if square and len(set(shape)) == 1:
        return str(shape[0])
    return "x".join(map(str, shape))


def summarize(model: nn.Module, input_size: tuple[int, ...] = (3, 224, 224)) -> Summary:
    """Summarize ``model`` for one input of shape ``input_size`` = (C, H, W) (or (C, L), (C, D, H, W)).

    Runs ``model`` once under ``torch.no_grad()`` in eval mode on a zero tensor of shape
    (1, *input_size) on the device and in the floating dtype of its parameters, then restores
    every module's training flag. Parameter totals equal ``sum(p.numel() for p in
    model.parameters())``, a shared parameter counted once; see the module docstring for
    multiply-adds and receptive fields.

    Raises ``ValueError`` for a malformed ``input_size`` and for a forward pass that fails (an
    input too small for a layer), naming the layer that was running.
    """
    if not input_size or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in input_size):
        raise ValueError(f"input size must be positive integers (C, H, W), got {input_size!r}")
    input_size = tuple(input_size)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    recorder = _Recorder(model)
    x = torch.zeros((1, *input_size), device=device, dtype=dtype)  # (N=1, C, H, W)
    recorder.remember(x, ((1,) * (x.dim() - 2), (1,) * (x.dim() - 2)) if x.dim() > 2 else None)
    training = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    except (RuntimeError, ValueError) as error:
        where = f"in layer {recorder.running[-1]!r} " if recorder.running else ""
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"{type(model).__name__}: the forward pass failed {where}on input {_shape_text(input_size)}: {first_line}"
        ) from None
    finally:
        recorder.remove_hooks()
        for module, mode in training.items():
            module.training = mode
    return Summary(type(model).__name__, input_size, tuple(recorder.rows + recorder.rows_not_run()))


class _Recorder:
    """The hooks of :func:`summarize` and what they collect: rows, and (r, j) per tensor seen."""

    def __init__(self, model: nn.Module) -> None:
        self.rows: list[LayerSummary] = []
        self.running: list[str] = []  # the layers whose forward has begun and not ended, outermost first
        self.counted: set[int] = set()  # ids of parameters already in a row
        self.fields: dict[int, tuple[weakref.ref, Field | None]] = {}
        self.seen: list[tuple[torch.Size, Field]] = []  # (spatial size, field) of every output with a field
        self.modules = {
            name or type(model).__name__: module
            for name, module in model.named_modules()
            if next(module.children(), None) is None or next(module.parameters(recurse=False), None) is not None
        }
        self.handles = []
        for name, module in self.modules.items():
            self.handles.append(module.register_forward_pre_hook(self._pre_hook(name)))
            self.handles.append(module.register_forward_hook(self._hook(name)))

    def remove_hooks(self) -> None:
        for handle in self.handles:
            handle.remove()

    def _pre_hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple) -> None:
            self.running.append(name)

        return hook

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: tuple, output) -> None:
            source = inputs[0] if inputs and isinstance(inputs[0], Tensor) else None
            tensor = output if isinstance(output, Tensor) else None
            is_leaf = next(module.children(), None) is None
            field = None
            if is_leaf and source is not None and tensor is not None:
                field = _field_after(module, self.field_of(source), source, tensor)
                self.remember(tensor, field)
            trainable, frozen = self._new_parameters(module)
            self.rows.append(
                LayerSummary(
                    name,
                    type(module).__name__,
                    tuple(tensor.shape[1:]) if tensor is not None else None,
                    trainable,
                    frozen,
                    multiply_adds(module, source, tensor) if is_leaf else 0,
                    field[0] if field else None,
                    field[1] if field else None,
                )
            )
            self.running.pop()

        return hook

    def _new_parameters(self, module: nn.Module) -> tuple[int, int]:
        """(trainable, frozen) counts of the module's own parameters not yet counted in a row."""
        trainable = frozen = 0
        for parameter in module.parameters(recurse=False):
            if id(parameter) in self.counted:
                continue
            self.counted.add(id(parameter))
            if parameter.requires_grad:
                trainable += parameter.numel()
            else:
                frozen += parameter.numel()
        return trainable, frozen

    def rows_not_run(self) -> list[LayerSummary]:
        """Rows for modules with parameters the forward pass never called (an auxiliary head in eval mode)."""
        rows = []
        for name, module in self.modules.items():
            trainable, frozen = self._new_parameters(module)
            if trainable or frozen:
                rows.append(LayerSummary(name, type(module).__name__, None, trainable, frozen, 0, None, None))
        return rows

    def remember(self, tensor: Tensor, field: Field | None) -> None:
        self.fields[id(tensor)] = (weakref.ref(tensor), field)
        if field is not None:
            self.seen.append((tensor.shape[2:], field))

    def field_of(self, tensor: Tensor) -> Field | None:
        """(r, j) of a tensor a layer produced, else the largest field seen so far at its spatial size.

        The second kind is fixed at its first lookup: the four branches of an Inception module
        read one concatenation, and must not see each other's outputs.
        """
        entry = self.fields.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            return entry[1]
        candidates = [field for size, field in self.seen if size == tensor.shape[2:]]
        field = max(candidates, key=lambda field: math.prod(field[0]), default=None)
        self.fields[id(tensor)] = (weakref.ref(tensor), field)
        return field


def multiply_adds(module: nn.Module, source: Tensor | None, output: Tensor | None) -> int:
    """Multiply-adds of one call of a leaf layer (formulas in the module docstring); 0 for other layers."""
    if source is None or output is None:
        return 0
    if isinstance(module, _ConvTransposeNd):
        return source.numel() * math.prod(module.kernel_size) * (module.out_channels // module.groups)
    if isinstance(module, _ConvNd):
        return output.numel() * math.prod(module.kernel_size) * (module.in_channels // module.groups)
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def _field_after(module: nn.Module, field: Field | None, source: Tensor, output: Tensor) -> Field | None:
    """(r, j) of ``output`` given (r, j) of ``source``, per the rules of the module docstring."""
    dimensions = source.dim() - 2
    if field is None or dimensions < 1 or output.dim() != source.dim():
        return None
    as_tuple = _ntuple(dimensions)
    if isinstance(module, _ConvTransposeNd):
        return None
    if isinstance(module, (_ConvNd, _MaxPoolNd, _AvgPoolNd, _LPPoolNd)):
        kernel = as_tuple(module.kernel_size)
        stride = as_tuple(module.stride or module.kernel_size)
        dilation = as_tuple(getattr(module, "dilation", 1))
    elif isinstance(module, (_AdaptiveAvgPoolNd, _AdaptiveMaxPoolNd)):
        sizes = list(zip(source.shape[2:], output.shape[2:]))
        if any(n % o for n, o in sizes):
            return None
        kernel = stride = tuple(n // o for n, o in sizes)
        dilation = as_tuple(1)
    elif source.shape[2:] == output.shape[2:]:
        return field
    else:
        return None
    fields, jumps = [], []
    for r, j, k, s, d in zip(*field, kernel, stride, dilation):
        step = receptive_field([Layer(k, s, dilation=d)])[0]  # one layer alone: (1 + d(K-1), s)
        fields.append(r + (step.receptive_field - 1) * j)
        jumps.append(j * step.jump)
    return tuple(fields), tuple(jumps)


def depth(model: nn.Module) -> int:
    """Weighted layers (convolutions and fully connected) on the longest path from input to output.

    This is how the papers count depth: AlexNet 8, VGG-16 16, GoogLeNet 22 (an Inception module
    is two deep: a 1×1 reduction, then its 3×3 or 5×5), ResNet-50 50 (shortcut projections lie on
    a shorter path). The model is traced with ``torch.fx`` in its current mode (call ``eval()``
    to leave training-only branches out); raises ``torch.fx`` 's error for a model whose
    ``forward`` branches on tensor values.
    """
    import torch.fx

    graph = torch.fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    longest: dict = {}  # node → weighted layers on the longest path ending there
    for node in graph.nodes:
        here = max((longest[source] for source in node.all_input_nodes), default=0)
        if node.op == "call_module" and isinstance(modules[node.target], (_ConvNd, nn.Linear)):
            here += 1
        longest[node] = here
    return max(longest[node] for node in graph.nodes if node.op == "output")
