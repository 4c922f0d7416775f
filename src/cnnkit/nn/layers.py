"""The lecture's convolution layer as a module: convolution, batch norm, activation, pooling.

A "conv layer" on the slides is more than the convolution: the K×K filters (n_K of them, stride
s, padding p) are followed by a non-linearity and often by pooling. :class:`ConvBlock` is that
unit; :class:`FullyConnectedBlock` is its counterpart after the feature maps are flattened.
Activations and poolings are looked up by the short names the compact network description
(:mod:`cnnkit.nn.description`) uses.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
}
"""Activation name → module class, each used with PyTorch's default settings."""

# The settings a name stands for, where the class has any: a LeakyReLU with another slope is not "leaky_relu".
_ACTIVATION_DEFAULTS = {nn.LeakyReLU: ("negative_slope", 0.01), nn.ELU: ("alpha", 1.0), nn.GELU: ("approximate", "none")}

POOLINGS = ("max", "avg", "l2")
"""Pooling names: the largest value, the mean, and sqrt of the sum of squares of each window."""


def activation_layer(name: str) -> nn.Module | None:
    """The activation module called ``name`` (a key of :data:`ACTIVATIONS`), or None for ``"none"``.

    Raises ``ValueError`` for an unknown name, listing the known ones.
    """
    if name == "none":
        return None
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of: {', '.join(ACTIVATIONS)} or none")
    return ACTIVATIONS[name]()


def activation_name(module: nn.Module) -> str | None:
    """The name of an activation module, or None when it is not one of :data:`ACTIVATIONS`.

    Raises ``ValueError`` for a known activation class with non-default settings
    (``LeakyReLU(0.2)``), which no name stands for. ``inplace`` is not a setting of the function.
    """
    for name, activation_class in ACTIVATIONS.items():
        if type(module) is activation_class:
            setting = _ACTIVATION_DEFAULTS.get(activation_class)
            if setting is not None and getattr(module, setting[0]) != setting[1]:
                raise ValueError(f"{module!r} has {setting[0]}={getattr(module, setting[0])!r}; '{name}' means {setting[1]!r}")
            return name
    return None


def pooling_layer(kind: str, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None, padding: int = 0) -> nn.Module:
    """A 2-D pooling module: ``kind`` is ``"max"``, ``"avg"`` or ``"l2"`` (see :data:`POOLINGS`).

    Window K, stride s (default K: non-overlapping windows), padding p; the output length is
    ⌊(n + 2p - K)/s⌋ + 1 per direction. L2 pooling, sqrt(Σ x²) over the window, takes no padding.
    Raises ``ValueError`` for an unknown kind or padding above half the window (PyTorch's limit).
    """
    if kind not in POOLINGS:
        raise ValueError(f"unknown pooling {kind!r}; expected one of: {', '.join(POOLINGS)}")
    stride = kernel_size if stride is None else stride
    smallest_window = min(kernel_size) if isinstance(kernel_size, tuple) else kernel_size
    if padding > smallest_window // 2:
        raise ValueError(f"pooling padding {padding} is more than half the window {kernel_size}")
    if kind == "max":
        return nn.MaxPool2d(kernel_size, stride, padding)
    if kind == "avg":
        return nn.AvgPool2d(kernel_size, stride, padding)
    if padding:
        raise ValueError("L2 pooling takes no padding")
    return nn.LPPool2d(2, kernel_size, stride)


def pooling_kind(module: nn.Module) -> str | None:
    """``"max"``, ``"avg"`` or ``"l2"`` for a 2-D pooling module, None for any other module."""
    if type(module) is nn.MaxPool2d:
        return "max"
    if type(module) is nn.AvgPool2d:
        return "avg"
    if type(module) is nn.LPPool2d and module.norm_type == 2:
        return "l2"
    return None


class ConvBlock(nn.Sequential):
    """Convolution → optional batch norm → activation → optional pooling, applied in that order.

    The convolution has ``out_channels`` = n_K filters of size K×K (``kernel_size``) over
    ``in_channels`` channels, stride s and zero padding p:

        (N, C_in, H, W) → (N, n_K, H', W'),  H' = ⌊(H + 2p - K)/s⌋ + 1 (likewise W')

    and has K·K·C_in·n_K weights plus n_K biases; the bias is left out with batch norm, whose
    shift β takes its place. Pooling (``pool`` = ``"max"``, ``"avg"`` or ``"l2"``, window
    ``pool_size``, stride ``pool_stride`` defaulting to the window) then shrinks H' and W' by the
    same formula. Submodules are named ``conv``, ``norm``, ``act`` and ``pool``; the ones not
    asked for are absent.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | str = 0,
        *,
        batch_norm: bool = False,
        activation: str = "relu",
        pool: str | None = None,
        pool_size: int | tuple[int, int] = 2,
        pool_stride: int | None = None,
        pool_padding: int = 0,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=not batch_norm)
        if batch_norm:
            layers["norm"] = nn.BatchNorm2d(out_channels)
        act = activation_layer(activation)
        if act is not None:
            layers["act"] = act
        if pool is not None:
            layers["pool"] = pooling_layer(pool, pool_size, pool_stride, pool_padding)
        super().__init__(layers)


class FullyConnectedBlock(nn.Sequential):
    """Fully connected layer → optional batch norm → activation: (N, in_features) → (N, out_features).

    y = act(W x + b) with W of shape (out_features, in_features): in_features·out_features weights
    plus out_features biases (no bias with batch norm). Submodules are named ``linear``, ``norm``
    and ``act``; the ones not asked for are absent.
    """

    def __init__(self, in_features: int, out_features: int, *, batch_norm: bool = False, activation: str = "relu") -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["linear"] = nn.Linear(in_features, out_features, bias=not batch_norm)
        if batch_norm:
            layers["norm"] = nn.BatchNorm1d(out_features)
        act = activation_layer(activation)
        if act is not None:
            layers["act"] = act
        super().__init__(layers)
