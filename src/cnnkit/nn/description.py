"""The lecture's compact network description as text: parse it, build the network, print it back.

A network is a chain of stages separated by ``|``. Each stage is a keyword and its settings, the
lecture's "K×K filters, n_K kernels, stride s, padding p, then activation and pooling"::

    conv 5x5x6 tanh | pool avg 2 | conv 5x5x16 tanh | pool avg 2 | fc 120 tanh | fc 84 tanh | fc 10

See :data:`GRAMMAR` for the full grammar. :func:`build_network` turns a description into an
``nn.Sequential`` (inferring the input features of the first ``fc`` from the input size),
:func:`describe` prints such a network back in canonical form, and a mistake raises
:class:`DescriptionError` pointing at the offending token.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import nn
from torch.nn.modules.utils import _pair

from cnnkit.nn.layers import ACTIVATIONS, POOLINGS, ConvBlock, FullyConnectedBlock, activation_name, pooling_kind, pooling_layer
from cnnkit.ops.shapes import output_size

GRAMMAR = f"""\
A network description is a chain of stages separated by '|':
  conv KxKxN [sS] [pP] [bn] [ACT]  N = n_K filters of K×K (KhxKwxN for rectangles), stride S
                                   (default 1), zero padding P (default 0), batch norm, activation
  pool max|avg|l2 K [sS] [pP]      K×K pooling window, stride S (default K), padding P (not for l2)
  fc N [bn] [ACT]                  fully connected layer with N outputs; the feature maps are
                                   flattened before the first fc and its inputs inferred
  dropout P                        drop each input with probability P during training
ACT is one of {', '.join(ACTIVATIONS)}; without one the stage is linear.
Example (LeNet-5, input 1x32x32):
  conv 5x5x6 tanh | pool avg 2 | conv 5x5x16 tanh | pool avg 2 | fc 120 tanh | fc 84 tanh | fc 10"""
"""The description grammar, as ``cnnkit summary --help`` shows it."""

LENET_DESCRIPTION = "conv 5x5x6 tanh | pool avg 2 | conv 5x5x16 tanh | pool avg 2 | fc 120 tanh | fc 84 tanh | fc 10"
"""LeNet-5 (LeCun et al. 1998, §II.B) for 1×32×32 input: 61,706 parameters.

C1 and C3 are 5×5 convolutions with 6 and 16 kernels, S2 and S4 2×2 subsampling (average
pooling here, without the paper's trainable coefficient), C5/F6 fully connected layers of 120 and
84 units, tanh throughout, and 10 outputs (a linear layer in place of the paper's RBF units). C3
connects to all six maps of S2, not to the paper's hand-picked subsets.
"""


class DescriptionError(ValueError):
    """A mistake in a network description, located at characters ``start:end`` of ``description``.

    The message names the token and its line and column, then shows the description's line
    with a caret under the token.
    """

    def __init__(self, reason: str, description: str, start: int, end: int) -> None:
        self.reason, self.description, self.start, self.end = reason, description, start, end
        self.token = description[start:end]
        line_start = description.rfind("\n", 0, start) + 1
        line_end = description.find("\n", start)
        line = description[line_start : len(description) if line_end == -1 else line_end]
        line_number, column = description.count("\n", 0, start) + 1, start - line_start + 1
        where = f"column {column}" if "\n" not in description else f"line {line_number}, column {column}"
        caret = " " * (column - 1) + "^" * max(1, min(end, line_start + len(line)) - start)
        super().__init__(f"{reason} ('{self.token}' at {where})\n  {line}\n  {caret}")


@dataclass(frozen=True)
class Token:
    """A word of a description and the offset of its first character."""

    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True)
class ConvStage:
    """``conv KhxKwxN [sS] [pP] [bn] [ACT]``: a convolution and what follows it."""

    kernel_size: tuple[int, int]
    kernels: int
    stride: int = 1
    padding: int = 0
    batch_norm: bool = False
    activation: str = "none"
    tokens: tuple[Token, ...] = field(default=(), compare=False, repr=False)

    def text(self) -> str:
        parts = [f"conv {_size_text(self.kernel_size, square=False)}x{self.kernels}"]
        parts += [f"s{self.stride}"] if self.stride != 1 else []
        parts += [f"p{self.padding}"] if self.padding else []
        return " ".join(parts + _norm_and_activation(self.batch_norm, self.activation))


@dataclass(frozen=True)
class PoolStage:
    """``pool max|avg|l2 K [sS] [pP]``: a pooling window, stride defaulting to the window."""

    kind: str
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: int = 0
    tokens: tuple[Token, ...] = field(default=(), compare=False, repr=False)

    def text(self) -> str:
        parts = [f"pool {self.kind} {_size_text(self.kernel_size, square=True)}"]
        parts += [f"s{self.stride[0]}"] if self.stride != self.kernel_size else []
        parts += [f"p{self.padding}"] if self.padding else []
        return " ".join(parts)


@dataclass(frozen=True)
class FullyConnectedStage:
    """``fc N [bn] [ACT]``: a fully connected layer with N outputs."""

    features: int
    batch_norm: bool = False
    activation: str = "none"
    tokens: tuple[Token, ...] = field(default=(), compare=False, repr=False)

    def text(self) -> str:
        return " ".join([f"fc {self.features}"] + _norm_and_activation(self.batch_norm, self.activation))


@dataclass(frozen=True)
class DropoutStage:
    """``dropout P``: zero each input with probability P in training (scaling the rest by 1/(1-P))."""

    probability: float
    tokens: tuple[Token, ...] = field(default=(), compare=False, repr=False)

    def text(self) -> str:
        return f"dropout {self.probability:g}"


Stage = ConvStage | PoolStage | FullyConnectedStage | DropoutStage


def _size_text(size: tuple[int, int], square: bool) -> str:
    return str(size[0]) if square and size[0] == size[1] else f"{size[0]}x{size[1]}"


def _norm_and_activation(batch_norm: bool, activation: str) -> list[str]:
    return (["bn"] if batch_norm else []) + ([activation] if activation != "none" else [])


# ---------------------------------------------------------------------------------------------
# Text → stages


def parse_description(description: str) -> list[Stage]:
    """The stages of ``description`` (see :data:`GRAMMAR`), in order.

    Raises :class:`DescriptionError` at the first token that does not fit the grammar, and
    ``ValueError`` for an empty description.
    """
    if not description.strip():
        raise ValueError(f"the network description is empty; write stages such as '{LENET_DESCRIPTION}'")
    stages: list[Stage] = []
    stage_words: list[Token] = []
    words = [Token(match.group(), match.start()) for match in re.finditer(r"\||[^\s|]+", description)]
    for word in [*words, None]:  # None: the end of the text closes the last stage
        if word is not None and word.text != "|":
            stage_words.append(word)
            continue
        if not stage_words:
            separator = word or words[-1]  # the '|' that closes (or, at the end, opens) the empty stage
            raise DescriptionError("empty stage: write a layer between the '|' separators", description, separator.start, separator.end)
        stages.append(_parse_stage(stage_words, description))
        stage_words = []
    return stages


def _parse_stage(tokens: list[Token], description: str) -> Stage:
    keyword, arguments = tokens[0], tokens[1:]
    parsers = {"conv": _parse_conv, "pool": _parse_pool, "fc": _parse_fully_connected, "dropout": _parse_dropout}
    if keyword.text not in parsers:
        close = difflib.get_close_matches(keyword.text, parsers, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise DescriptionError(f"unknown layer; expected one of: {', '.join(parsers)}{hint}", description, keyword.start, keyword.end)
    return parsers[keyword.text](keyword, arguments, description)


def _error(reason: str, token: Token, description: str) -> DescriptionError:
    return DescriptionError(reason, description, token.start, token.end)


def _required(arguments: list[Token], keyword: Token, what: str, description: str) -> Token:
    if not arguments:
        raise _error(f"{keyword.text} needs {what}", keyword, description)
    return arguments.pop(0)


def _parse_options(arguments: list[Token], allowed: set[str], keyword: Token, description: str) -> tuple[dict[str, object], dict[str, Token]]:
    """Options ``sS``, ``pP``, ``bn`` and an activation, each at most once, in any order, and their tokens."""
    options: dict[str, object] = {}
    tokens: dict[str, Token] = {}
    for token in arguments:
        number = re.fullmatch(r"([sp])(\d+)", token.text)
        if number and number.group(1) in allowed:
            name, value = ("stride" if number.group(1) == "s" else "padding"), int(number.group(2))
            if name == "stride" and value < 1:
                raise _error("stride must be at least 1", token, description)
        elif token.text == "bn" and "bn" in allowed:
            name, value = "batch_norm", True
        elif token.text in ACTIVATIONS and "act" in allowed:
            name, value = "activation", token.text
        else:
            expected = {"s": "sS (stride)", "p": "pP (padding)", "bn": "bn (batch norm)", "act": f"an activation ({', '.join(ACTIVATIONS)})"}
            listed = ", ".join(text for key, text in expected.items() if key in allowed)
            close = difflib.get_close_matches(token.text, ACTIVATIONS, n=1) if "act" in allowed else []
            hint = f"; did you mean {close[0]}?" if close else ""
            raise _error(f"unknown {keyword.text} option; expected {listed}{hint}", token, description)
        if name in options:
            raise _error(f"{keyword.text} has a second {name.replace('_', ' ')}", token, description)
        options[name], tokens[name] = value, token
    return options, tokens


def _parse_conv(keyword: Token, arguments: list[Token], description: str) -> ConvStage:
    size = _required(arguments, keyword, "the filter size and number of kernels, e.g. conv 5x5x6", description)
    match = re.fullmatch(r"(\d+)[x×](\d+)[x×](\d+)", size.text)
    if not match or min(int(group) for group in match.groups()) < 1:
        raise _error("conv size must be KxKxN: filter height x width x number of kernels, e.g. 5x5x6", size, description)
    height, width, kernels = (int(group) for group in match.groups())
    options, _ = _parse_options(arguments, {"s", "p", "bn", "act"}, keyword, description)
    return ConvStage((height, width), kernels, **options, tokens=(keyword, size))


def _parse_pool(keyword: Token, arguments: list[Token], description: str) -> PoolStage:
    kind = _required(arguments, keyword, f"a kind ({', '.join(POOLINGS)}) and a window, e.g. pool max 2", description)
    if kind.text not in POOLINGS:
        raise _error(f"unknown pooling; expected one of: {', '.join(POOLINGS)}", kind, description)
    size = _required(arguments, keyword, "a window size after the kind, e.g. pool max 2", description)
    match = re.fullmatch(r"(\d+)(?:[x×](\d+))?", size.text)
    if not match or int(match.group(1)) < 1 or int(match.group(2) or 1) < 1:
        raise _error("pooling window must be K or KhxKw, e.g. 2 or 3x2", size, description)
    kernel_size = (int(match.group(1)), int(match.group(2) or match.group(1)))
    allowed = {"s", "p"} if kind.text != "l2" else {"s"}
    options, tokens = _parse_options(arguments, allowed, keyword, description)
    stride = options.get("stride")
    padding = options.get("padding", 0)
    if padding > min(kernel_size) // 2:
        raise _error(f"pooling padding {padding} is more than half the window {size.text}", tokens["padding"], description)
    return PoolStage(kind.text, kernel_size, kernel_size if stride is None else (stride, stride), padding, tokens=(keyword, size))


def _parse_fully_connected(keyword: Token, arguments: list[Token], description: str) -> FullyConnectedStage:
    size = _required(arguments, keyword, "a number of outputs, e.g. fc 10", description)
    if not re.fullmatch(r"\d+", size.text) or int(size.text) < 1:
        raise _error("fc needs a positive number of outputs", size, description)
    options, _ = _parse_options(arguments, {"bn", "act"}, keyword, description)
    return FullyConnectedStage(int(size.text), **options, tokens=(keyword, size))


def _parse_dropout(keyword: Token, arguments: list[Token], description: str) -> DropoutStage:
    probability = _required(arguments, keyword, "a probability, e.g. dropout 0.5", description)
    try:
        value = float(probability.text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise _error("dropout probability must be a number in [0, 1)", probability, description)
    if arguments:
        raise _error("dropout takes only a probability", arguments[0], description)
    return DropoutStage(value, tokens=(keyword, probability))


# ---------------------------------------------------------------------------------------------
# Stages → network


def build_network(description: str, in_channels: int = 1, input_size: int | tuple[int, int] = 32) -> nn.Sequential:
    """The network that ``description`` writes down, for inputs of shape (N, in_channels, H, W).

    Each ``conv`` becomes a :class:`~cnnkit.nn.layers.ConvBlock` named ``conv1``, ``conv2``, …;
    a ``pool`` right after a conv is that block's pooling, any other one a module ``pool1``, ….
    A ``flatten`` module precedes the first ``fc`` (blocks ``fc1``, …), whose input features
    are C·H·W of the feature maps reaching it, with every size computed by
    ``H' = ⌊(H + 2p - K)/s⌋ + 1``. The network's ``default_input_size`` is (C, H, W).

    Raises :class:`DescriptionError` for a description that does not parse, a conv or pool after
    an fc, or a layer whose window is larger than its (padded) input at this input size.
    """
    height, width = _pair(input_size)
    for name, value in (("in_channels", in_channels), ("input height", height), ("input width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    default_input_size = (in_channels, height, width)
    stages = parse_description(description)
    network = nn.Sequential()
    channels, features = in_channels, None  # (N, C, H, W) until the first fc, then (N, features)
    counts = {"conv": 0, "pool": 0, "fc": 0, "dropout": 0}
    index = 0
    while index < len(stages):
        stage = stages[index]
        if isinstance(stage, (ConvStage, PoolStage)) and features is not None:
            keyword = stage.tokens[0]
            raise DescriptionError(f"{keyword.text} cannot follow fc: the feature maps are flattened", description, keyword.start, keyword.end)
        if isinstance(stage, ConvStage):
            height, width = _stage_output_size(stage, height, width, description)
            pool = stages[index + 1] if index + 1 < len(stages) and isinstance(stages[index + 1], PoolStage) else None
            if pool is not None:
                height, width = _stage_output_size(pool, height, width, description)
                index += 1
            counts["conv"] += 1
            network.add_module(f"conv{counts['conv']}", _conv_block(stage, pool, channels))
            channels = stage.kernels
        elif isinstance(stage, PoolStage):
            height, width = _stage_output_size(stage, height, width, description)
            counts["pool"] += 1
            network.add_module(f"pool{counts['pool']}", pooling_layer(stage.kind, stage.kernel_size, stage.stride, stage.padding))
        elif isinstance(stage, FullyConnectedStage):
            if features is None:
                network.add_module("flatten", nn.Flatten())
                features = channels * height * width  # (N, C, H, W) → (N, C·H·W)
            counts["fc"] += 1
            block = FullyConnectedBlock(features, stage.features, batch_norm=stage.batch_norm, activation=stage.activation)
            network.add_module(f"fc{counts['fc']}", block)
            features = stage.features
        else:
            counts["dropout"] += 1
            network.add_module(f"dropout{counts['dropout']}", nn.Dropout(stage.probability))
        index += 1
    network.default_input_size = default_input_size
    return network


def _conv_block(stage: ConvStage, pool: PoolStage | None, in_channels: int) -> ConvBlock:
    pooling = {} if pool is None else {"pool": pool.kind, "pool_size": pool.kernel_size, "pool_stride": pool.stride, "pool_padding": pool.padding}
    return ConvBlock(
        in_channels,
        stage.kernels,
        stage.kernel_size,
        stage.stride,
        stage.padding,
        batch_norm=stage.batch_norm,
        activation=stage.activation,
        **pooling,
    )


def _stage_output_size(stage: ConvStage | PoolStage, height: int, width: int, description: str) -> tuple[int, int]:
    """(H', W') after a conv or pool stage, or a :class:`DescriptionError` at its size token."""
    stride = _pair(stage.stride)
    try:
        return tuple(
            output_size(n, kernel, step, stage.padding)
            for n, kernel, step in zip((height, width), stage.kernel_size, stride)
        )
    except ValueError as error:
        size = stage.tokens[1]
        raise DescriptionError(f"{stage.tokens[0].text} does not fit its {height}x{width} input: {error}", description, size.start, size.end) from None


# ---------------------------------------------------------------------------------------------
# Network → text


def describe(model: nn.Module) -> str:
    """``model`` in the description notation, canonical form (defaults left out, ``|`` between stages).

    ``model`` must be a chain: an ``nn.Sequential`` whose children are layers or further
    ``nn.Sequential`` s (:class:`~cnnkit.nn.layers.ConvBlock` is one), read in order. A network
    from :func:`build_network` prints back as the canonical form of its description, so
    ``describe(build_network(text))`` equals ``text`` written canonically. Raises ``ValueError``
    naming the first layer the notation cannot express (a dilated conv, a LeakyReLU with another
    slope, a conv with a bias and batch norm, a branch…).
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"describe needs an nn.Sequential chain of layers, got {type(model).__name__}")
    stages: list[Stage] = []
    biased: list[tuple[str, bool]] = []  # per conv/fc stage: its layer name and whether it has a bias
    leaves = list(_chain(model))
    previous: nn.Module | None = None
    for position, (name, layer) in enumerate(leaves):
        following = leaves[position + 1][1] if position + 1 < len(leaves) else None
        _describe_layer(name, layer, previous, following, stages)
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            biased.append((name, layer.bias is not None))
        previous = layer
    for (name, has_bias), stage in zip(biased, (s for s in stages if isinstance(s, (ConvStage, FullyConnectedStage)))):
        if has_bias == stage.batch_norm:
            state = "has a bias and" if has_bias else "has no bias and no"
            raise ValueError(f"layer {name!r} {state} batch norm; the description implies a bias exactly when there is no batch norm")
    return " | ".join(stage.text() for stage in stages)


def _chain(module: nn.Sequential, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    for name, child in module.named_children():
        qualified = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            yield from _chain(child, f"{qualified}.")
        elif next(child.children(), None) is None:
            yield qualified, child
        else:
            raise ValueError(f"layer {qualified!r} ({type(child).__name__}) is not a chain of layers; describe reads nn.Sequential only")


def _describe_layer(name: str, layer: nn.Module, previous: nn.Module | None, following: nn.Module | None, stages: list[Stage]) -> None:
    """Append the stage ``layer`` starts to ``stages``, or fold it into the last one (batch norm, activation)."""
    unsupported = f"layer {name!r} {layer!r}"
    last = stages[-1] if stages else None
    if type(layer) is nn.Conv2d:
        if any(isinstance(stage, FullyConnectedStage) for stage in stages):
            raise ValueError(f"{unsupported} follows a fully connected layer; the description flattens once")
        if layer.groups != 1 or layer.dilation != (1, 1) or layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise ValueError(f"{unsupported}: groups, dilation, string padding and padding modes have no notation")
        if layer.stride[0] != layer.stride[1] or layer.padding[0] != layer.padding[1]:
            raise ValueError(f"{unsupported}: the description has one stride and one padding for both directions")
        stages.append(ConvStage(tuple(layer.kernel_size), layer.out_channels, layer.stride[0], layer.padding[0]))
        return
    kind = pooling_kind(layer)
    if kind is not None:
        if any(isinstance(stage, FullyConnectedStage) for stage in stages):
            raise ValueError(f"{unsupported} follows a fully connected layer; the description flattens once")
        padding = _pair(getattr(layer, "padding", 0))
        stride = _pair(layer.stride if layer.stride is not None else layer.kernel_size)
        extras = (getattr(layer, "dilation", 1) not in (1, (1, 1)), layer.ceil_mode, getattr(layer, "return_indices", False),
                  getattr(layer, "count_include_pad", True) is not True, getattr(layer, "divisor_override", None) is not None)
        if any(extras) or padding[0] != padding[1] or stride[0] != stride[1]:
            raise ValueError(f"{unsupported}: dilation, ceil_mode, uneven stride or padding have no notation")
        stages.append(PoolStage(kind, _pair(layer.kernel_size), stride, padding[0]))
        return
    if type(layer) is nn.Linear:
        spatial_before = any(isinstance(stage, (ConvStage, PoolStage)) for stage in stages)
        first_fc = not any(isinstance(stage, FullyConnectedStage) for stage in stages)
        if spatial_before and first_fc and type(previous) is not nn.Flatten:
            raise ValueError(f"{unsupported} follows feature maps without an nn.Flatten")
        stages.append(FullyConnectedStage(layer.out_features))
        return
    if type(layer) is nn.Flatten:
        if type(following) is not nn.Linear or (layer.start_dim, layer.end_dim) != (1, -1):
            raise ValueError(f"{unsupported}: the description flattens only right before the first fc")
        return
    if type(layer) is nn.Dropout:
        stages.append(DropoutStage(layer.p))
        return
    if type(layer) in (nn.BatchNorm2d, nn.BatchNorm1d):
        expected = nn.Conv2d if type(layer) is nn.BatchNorm2d else nn.Linear
        defaults = (layer.eps, layer.momentum, layer.affine, layer.track_running_stats) == (1e-5, 0.1, True, True)
        if type(previous) is not expected or not defaults:
            raise ValueError(f"{unsupported}: batch norm has a notation only right after a conv or fc, with default settings")
        stages[-1] = dataclasses.replace(last, batch_norm=True)
        return
    activation = activation_name(layer)
    if activation is not None:
        if not isinstance(last, (ConvStage, FullyConnectedStage)) or last.activation != "none" or not isinstance(previous, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d)):
            raise ValueError(f"{unsupported}: an activation has a notation only after a conv or fc (and its batch norm)")
        stages[-1] = dataclasses.replace(last, activation=activation)
        return
    raise ValueError(f"{unsupported} has no notation in the network description")
