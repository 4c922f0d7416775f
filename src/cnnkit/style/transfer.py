"""Neural style transfer (Gatys, Ecker & Bethge 2016, "Image style transfer using convolutional
neural networks"): optimise an image so that its VGG-19 responses match a photograph's at one
deep layer (content) and a painting's Gram matrices at several layers (style).

The spine of :func:`stylize`, per scale from coarse to fine:

1. resize content and style (each keeps its own aspect ratio; the style's longer side is
   ``style_scale`` × the result's);
2. targets: the content's responses at ``content_layer``, the style's Gram matrices at
   ``style_layers`` (:mod:`cnnkit.style.losses`);
3. start from the content image, noise, or the previous scale's result upscaled;
4. minimise α·L_content + β·L_style + γ·L_tv over the pixels with L-BFGS-B, the pixels bounded
   to [0, 1], or Adam (clipped to [0, 1] after every step); VGG-19 in bfloat16 where the CPU
   has it natively (``precision``), the Gram matrices and losses always in float32.

Gatys et al. name layers after the convolutions of their Caffe network, whose ReLUs work in
place: their conv4_2 is the *rectified* response, cnnkit's ``relu4_2``, which is the default
here (``conv4_2`` asks for the response before the ReLU). Painterly results need VGG-19
trained on ImageNet; see :data:`WEIGHTS_HINT`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.models import VGG, create_model
from cnnkit.style.colour import combine_luminance, luminance, match_luminance
from cnnkit.style.losses import content_loss, gram_matrix, style_loss, total_variation

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
MIN_SIDE = 16
"""Smallest image side VGG-19 takes to relu5_1, behind four 2×2 poolings; a smaller style image is enlarged."""

WEIGHTS_HINT = (
    "without ImageNet weights VGG-19's features are random and the result will not be painterly; "
    "get torchvision's vgg19-dcbb9e9d.pth (https://download.pytorch.org/models/vgg19-dcbb9e9d.pth) "
    "and pass it with --weights (Python: style_features(weights=PATH))"
)


class StyleFeatures(nn.Module):
    """VGG-19's convolutional trunk up to the deepest layer asked for, returning named responses.

    ``forward(x)`` takes images (N, 3, H, W) in [0, 1], normalises them with ImageNet's mean and
    standard deviation, and returns ``{name: (N, C, H', W')}`` for ``names`` (paper names such
    as ``relu4_2`` or ``conv1_1``, see ``VGG.layer_names``). ReLUs do not work in place, so
    every response is kept intact; with ``pooling="avg"`` each 2×2 max pooling becomes a 2×2
    average pooling, which Gatys et al. (§2) found gives slightly more appealing results.
    The parameters do not require gradients: only the image is optimised.
    """

    def __init__(self, vgg: VGG, names: tuple[str, ...], pooling: str = "max", pretrained: bool = False) -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
        unknown = [name for name in names if name not in vgg.layer_names]
        if unknown:
            raise ValueError(f"unknown VGG layer(s) {', '.join(unknown)}; known: {', '.join(vgg.layer_names)}")
        index_of = {name: int(vgg.layer_names[name].split(".")[1]) for name in names}
        layers = []
        for module in vgg.features[: max(index_of.values()) + 1]:
            if isinstance(module, nn.ReLU):
                module = nn.ReLU(inplace=False)
            elif isinstance(module, nn.MaxPool2d) and pooling == "avg":
                module = nn.AvgPool2d(kernel_size=2, stride=2)
            layers.append(module)
        self.layers = nn.Sequential(*layers).eval().requires_grad_(False)
        self.names = tuple(names)
        self.names_at = {}  # layer index → names whose response it is
        for name, index in index_of.items():
            self.names_at.setdefault(index, []).append(name)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.pretrained = pretrained

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        x = ((image - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        responses = {}
        for index, layer in enumerate(self.layers):
            x = layer(x)
            for name in self.names_at.get(index, ()):
                responses[name] = x
        return responses


def style_features(
    weights=None, names: tuple[str, ...] = (CONTENT_LAYER, *STYLE_LAYERS), pooling: str = "max", seed: int = 0
) -> StyleFeatures:
    """cnnkit's VGG-19 with ``weights`` (a torchvision-format ``vgg19-*.pth`` or safetensors file),
    or, without a file, randomly initialised from ``seed`` (``.pretrained`` is then False).

    The file is loaded by :func:`cnnkit.models.weights.load_weights` (``weights_only=True``);
    a file for another network raises its key-mismatch error.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vgg = create_model("vgg19", weights=weights)
    return StyleFeatures(vgg, names, pooling, pretrained=weights is not None)


PRECISIONS = ("float32", "bfloat16")


def native_precision() -> str:
    """``"bfloat16"`` where oneDNN runs bfloat16 convolutions natively on this CPU (AVX-512 BF16
    or AMX), else ``"float32"``: emulated bfloat16 is slower than float32."""
    return "bfloat16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"


def responses_at(features: StyleFeatures, image: Tensor, precision: str) -> dict[str, Tensor]:
    """``features(image)`` in ``precision`` (bfloat16: under autocast), returned in float32."""
    with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        responses = features(image)
    return {name: response.float() for name, response in responses.items()}


@dataclass
class StyleConfig:
    """What :func:`stylize` does. Defaults follow Gatys et al. and the PyTorch tutorial's scale.

    size: longer side of the result in pixels; the content keeps its aspect ratio.
    style_scale: the style image's longer side as a multiple of ``size`` (its aspect ratio kept).
    steps: optimiser iterations at the final scale (L-BFGS: loss evaluations, as in the tutorial).
    scales: coarse-to-fine levels; each coarser one halves the size (1: single scale).
    coarse_steps: iterations at each coarser scale (default: ``steps``).
    content_layer, style_layers: responses compared; ``style_layers`` maps names to weights w_l.
    content_weight, style_weight, tv_weight: α, β and γ of the total loss.
    optimizer: ``"lbfgs"`` (the paper's; L-BFGS-B with the pixels bounded to [0, 1]) or ``"adam"`` (``learning_rate`` per step, pixels in [0, 1]).
    init: ``"content"`` or ``"noise"`` (uniform, from ``seed``).
    pooling: ``"max"`` or ``"avg"``.
    precision: ``"float32"``, or ``"bfloat16"`` to run VGG-19 under autocast (convolutions in
        bfloat16, Gram matrices and losses in float32); the default is ``"bfloat16"`` where the
        CPU computes it natively (:func:`native_precision`), about twice as fast there.
    preserve_color: transfer luminance only and keep the content's colours.
    """

    size: int = 512
    style_scale: float = 1.0
    steps: int = 300
    scales: int = 1
    coarse_steps: int | None = None
    content_layer: str = CONTENT_LAYER
    style_layers: dict[str, float] = field(default_factory=lambda: {name: 1.0 for name in STYLE_LAYERS})
    content_weight: float = 1.0
    style_weight: float = 1e6
    tv_weight: float = 0.0
    optimizer: str = "lbfgs"
    learning_rate: float = 0.02
    init: str = "content"
    pooling: str = "max"
    precision: str = field(default_factory=native_precision)
    preserve_color: bool = False
    seed: int = 0

    def check(self) -> None:
        """Raise ``ValueError`` naming the first setting that cannot work."""
        if self.size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {self.size}")
        if self.size / 2 ** (self.scales - 1) < 16 or self.scales < 1:
            raise ValueError(f"{self.scales} scales from {self.size} px would go below 16 px; use fewer scales")
        if self.steps < 1 or (self.coarse_steps is not None and self.coarse_steps < 0):
            raise ValueError(f"steps must be positive, got {self.steps}")
        if not self.style_scale > 0:
            raise ValueError(f"style_scale must be positive, got {self.style_scale}")
        if self.optimizer not in ("lbfgs", "adam"):
            raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {self.optimizer!r}")
        if self.init not in ("content", "noise"):
            raise ValueError(f"init must be 'content' or 'noise', got {self.init!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be 'float32' or 'bfloat16', got {self.precision!r}")
        if not self.style_layers:
            raise ValueError("style_layers must name at least one layer")


@dataclass
class Step:
    """One optimiser iteration, as reported to :func:`stylize`'s ``callback``."""

    scale: int  # 0 = coarsest
    size: tuple[int, int]
    step: int  # 1-based within the scale
    content: float  # α·L_content
    style: float  # β·L_style
    tv: float  # γ·L_tv
    image: Tensor  # (3, H, W) in [0, 1], the current pixels (do not modify)

    @property
    def total(self) -> float:
        return self.content + self.style + self.tv


@dataclass
class StyleResult:
    """The stylised image (3, H, W) in [0, 1] and how it was reached."""

    image: Tensor
    history: list[dict]  # per step: scale, size, step, content, style, tv
    seconds: float
    pretrained: bool


def resize_to(image: Tensor, longer_side: int) -> Tensor:
    """(…, C, H, W) resized (antialiased bilinear) so that max(H, W) = ``longer_side``, aspect kept."""
    h, w = image.shape[-2:]
    scale = longer_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    batched = image if image.dim() == 4 else image[None]
    out = F.interpolate(batched, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return out if image.dim() == 4 else out[0]


def stylize(
    content: Tensor,
    style: Tensor,
    config: StyleConfig | None = None,
    features: StyleFeatures | None = None,
    progress: bool | None = None,
    callback: Callable[[Step], bool | None] | None = None,
) -> StyleResult:
    """Render ``content`` (3, H, W) in the style of ``style`` (3, H', W'), both RGB in [0, 1].

    ``features`` defaults to :func:`style_features` without weights (random VGG-19, not
    painterly; pass one built with a weights file). ``progress`` shows a tqdm bar with the
    content and style losses (default: only when stderr is a terminal). ``callback`` is called
    after every iteration with a :class:`Step`; returning True stops the optimisation there.
    The result is deterministic for a given ``config.seed`` on one machine and thread count.
    """
    config = config or StyleConfig()
    config.check()
    for name, image in (("content", content), ("style", style)):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"{name} image must be RGB (3, H, W), got {tuple(image.shape)}")
    names = (config.content_layer, *config.style_layers)
    if features is None:
        features = style_features(names=names, pooling=config.pooling, seed=config.seed)
    missing = [name for name in names if name not in features.names]
    if missing:
        raise ValueError(f"features do not compute {', '.join(missing)}")
    if progress is None:
        progress = sys.stderr.isatty()

    generator = torch.Generator().manual_seed(config.seed)
    if config.preserve_color:
        style = match_luminance(style, content)
        colour_source, content = content, luminance(content)

    start = time.perf_counter()
    history: list[dict] = []
    image = None
    stopped = False
    for scale in range(config.scales):
        longer = round(config.size / 2 ** (config.scales - 1 - scale))
        steps = config.steps if scale == config.scales - 1 or config.coarse_steps is None else config.coarse_steps
        target_content = resize_to(content, longer)[None]  # (1, 3, h, w)
        if min(target_content.shape[-2:]) < MIN_SIDE:
            raise ValueError(
                f"the content image would be {target_content.shape[-2]}×{target_content.shape[-1]} px at scale "
                f"{scale + 1} of {config.scales}; VGG-19 needs at least {MIN_SIDE} px per side: use fewer scales or a larger size"
            )
        style_aspect = max(style.shape[-2:]) / min(style.shape[-2:])
        target_style = resize_to(style, max(round(longer * config.style_scale), math.ceil(MIN_SIDE * style_aspect)))[None]
        if image is None:
            image = target_content.clone() if config.init == "content" else torch.rand(target_content.shape, generator=generator)
        else:
            image = F.interpolate(image, size=target_content.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)
        if steps == 0:
            continue
        with torch.no_grad():
            content_target = responses_at(features, target_content, config.precision)[config.content_layer]
            style_responses = responses_at(features, target_style, config.precision)
            style_targets = {name: gram_matrix(style_responses[name]) for name in config.style_layers}
        image, stopped = _optimise(image, features, content_target, style_targets, config, steps, scale, progress, callback, history)
        if stopped:
            break

    result = image[0].detach()
    if config.preserve_color:
        result = combine_luminance(result, resize_to(colour_source, max(result.shape[-2:])))
    return StyleResult(result, history, time.perf_counter() - start, features.pretrained)


class _Stopped(Exception):
    """Raised from L-BFGS-B's function when the step budget is spent or the callback asks to stop."""


def _optimise(image, features, content_target, style_targets, config, steps, scale, progress, callback, history):
    """Minimise the total loss over the pixels of ``image`` (1, 3, h, w) in [0, 1] for ``steps``
    loss evaluations (L-BFGS-B) or Adam steps; the result is the last image evaluated."""
    from tqdm.auto import tqdm

    image = image.detach().contiguous().requires_grad_(True)
    size = tuple(image.shape[-2:])
    bar = tqdm(total=steps, desc=f"style {size[0]}×{size[1]}", disable=not progress, leave=False)
    state = {"step": 0, "stop": False}

    def closure():
        image.grad = None
        responses = responses_at(features, image, config.precision)
        grams = {name: gram_matrix(responses[name]) for name in style_targets}
        content_term = config.content_weight * content_loss(responses[config.content_layer], content_target)
        style_term = config.style_weight * style_loss(grams, style_targets, config.style_layers)
        tv_term = config.tv_weight * total_variation(image) if config.tv_weight else image.new_zeros(())
        loss = content_term + style_term + tv_term
        loss.backward()
        state["step"] += 1
        terms = (content_term.item(), style_term.item(), tv_term.item())
        record = Step(scale, size, state["step"], *terms, image.detach()[0])
        history.append({"scale": scale, "size": list(size), "step": record.step, "content": record.content,
                        "style": record.style, "tv": record.tv})
        bar.update(1)
        bar.set_postfix(content=f"{record.content:.3g}", style=f"{record.style:.3g}")
        if callback is not None and callback(record):
            state["stop"] = True
        return loss

    if config.optimizer == "lbfgs":
        _lbfgs_b(image, closure, lambda: state["stop"] or state["step"] >= steps)
    else:
        optimizer = torch.optim.Adam([image], lr=config.learning_rate)
        while state["step"] < steps and not state["stop"]:
            optimizer.step(closure)
            with torch.no_grad():
                image.clamp_(0, 1)  # projected gradient descent onto [0, 1]
    bar.close()
    return image.detach().contiguous(), state["stop"]


def _lbfgs_b(image: Tensor, closure: Callable[[], Tensor], done: Callable[[], bool]) -> None:
    """Minimise ``closure()`` over ``image`` in place with L-BFGS-B (Byrd, Lu, Nocedal & Zhu 1995),
    every pixel bounded to [0, 1].

    The bounds make every image the optimiser evaluates a valid one, and the line search sees
    one smooth function: clipping unbounded L-BFGS's pixels afterwards raises the loss of the
    returned image, and clipping them during the search makes the function inconsistent.
    Tolerances are zero, so it runs until ``done()`` after an evaluation (the image is then the
    one just evaluated) or until the projected gradient vanishes.
    """
    from scipy.optimize import Bounds, minimize

    def loss_and_gradient(x):
        with torch.no_grad():
            image.copy_(torch.from_numpy(x).view(image.shape))
        loss = closure()
        if done():
            raise _Stopped
        return loss.item(), image.grad.double().flatten().numpy()

    x0 = image.detach().double().flatten().numpy()
    try:
        result = minimize(loss_and_gradient, x0, jac=True, method="L-BFGS-B", bounds=Bounds(0.0, 1.0),
                          options={"maxiter": 10**9, "maxfun": 10**9, "maxcor": 50, "ftol": 0.0, "gtol": 0.0})
    except _Stopped:
        return
    with torch.no_grad():
        image.copy_(torch.from_numpy(result.x).view(image.shape))
