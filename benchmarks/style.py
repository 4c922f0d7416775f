"""Seconds to a given loss for neural style transfer at 256 px: cnnkit's coarse-to-fine
``stylize`` against the PyTorch tutorial's single-scale L-BFGS loop, in one process.

Both minimise the same objective on the same VGG-19 features (cnnkit's ``StyleFeatures``, with
``--weights`` when given, random otherwise): content at relu4_2, Gram matrices at
relu1_1 … relu5_1, style weight 1e6, content weight 1, pixels clipped to [0, 1].

    baseline  the tutorial (pytorch.org/tutorials/advanced/neural_style_tutorial): the content
              image at full size, ``optim.LBFGS([image])`` with its defaults (20 iterations per
              ``step``, no line search), clipping in the closure, ``--steps`` evaluations
    cnnkit    ``stylize`` with ``--scales`` levels (each coarser one half the size,
              ``--coarse-steps`` each), then L-BFGS at full size until the loss is reached

The target is the total loss α·L_content + β·L_style the baseline has after ``--steps``
evaluations; each method's time is when its full-size loss first falls to the target (cnnkit's
includes its coarse levels). The two run ``--rounds`` times, alternating, and the best time of
each counts: on a shared machine other work only ever adds time.

    python benchmarks/style.py                      # 10-20 minutes on 2 idle cores
    python benchmarks/style.py --weights vgg19-dcbb9e9d.pth --steps 300
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import cnnkit
from cnnkit.data import read_image, sample_image
from cnnkit.style import StyleConfig, resize_to, style_features, stylize
from cnnkit.style.transfer import CONTENT_LAYER, STYLE_LAYERS
from machine import describe_machine

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "style-images"


def tutorial_gram_matrix(x: torch.Tensor) -> torch.Tensor:
    """The tutorial's gram_matrix, written as it is there."""
    a, b, c, d = x.size()
    features = x.view(a * b, c * d)
    return torch.mm(features, features.t()).div(a * b * c * d)


def tutorial_loop(features, content, style, steps, style_weight=1e6, content_weight=1.0):
    """The tutorial's run_style_transfer: returns [(seconds, content term, style term)] per evaluation."""
    start = time.perf_counter()
    with torch.no_grad():
        content_target = features(content)[CONTENT_LAYER]
        style_targets = {name: tutorial_gram_matrix(r) for name, r in features(style).items() if name in STYLE_LAYERS}
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([image])
    trace = []

    def closure():
        with torch.no_grad():
            image.clamp_(0, 1)
        optimizer.zero_grad()
        responses = features(image)
        style_score = sum(F.mse_loss(tutorial_gram_matrix(responses[n]), style_targets[n]) for n in STYLE_LAYERS)
        content_score = F.mse_loss(responses[CONTENT_LAYER], content_target)
        loss = style_weight * style_score + content_weight * content_score
        loss.backward()
        trace.append((time.perf_counter() - start, content_weight * content_score.item(), style_weight * style_score.item()))
        return loss

    while len(trace) < steps:
        optimizer.step(closure)
    return trace[:steps]


def cnnkit_run(features, content, style, target, args):
    """stylize coarse-to-fine, stopping when the full-size total loss reaches ``target``."""
    config = StyleConfig(size=args.size, steps=args.max_steps, scales=args.scales, coarse_steps=args.coarse_steps)
    start = time.perf_counter()
    reached = {}

    def callback(step):
        if step.scale == config.scales - 1 and step.total <= target and not reached:
            reached.update(seconds=time.perf_counter() - start, step=step.step, content=step.content, style=step.style)
            return True
        return None

    result = stylize(content[0], style[0], config, features=features, progress=False, callback=callback)
    final = result.history[-1]
    return reached or {"seconds": float("inf"), "step": final["step"], "content": final["content"], "style": final["style"]}


def load_images(size: int):
    if SHARED_IMAGES.is_dir():
        content, style = read_image(SHARED_IMAGES / "tubingen.jpg", gray=False), read_image(SHARED_IMAGES / "starry_night.jpg", gray=False)
        names = "tubingen.jpg ← starry_night.jpg"
    else:
        content, style = sample_image("astronaut"), sample_image("brick", gray=False)
        names = "astronaut ← brick (scikit-image)"
    return resize_to(content, size)[None], resize_to(style, size)[None], names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="longer side of the result (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=300, help="baseline evaluations that set the target loss (default: %(default)s)")
    parser.add_argument("--scales", type=int, default=3, help="cnnkit's coarse-to-fine levels (default: %(default)s)")
    parser.add_argument("--coarse-steps", type=int, default=100, help="cnnkit's evaluations per coarser level (default: %(default)s)")
    parser.add_argument("--max-steps", type=int, default=600, help="cnnkit's cap at full size (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the best time counts (default: %(default)s)")
    parser.add_argument("--weights", help="torchvision vgg19-*.pth (default: random VGG-19 features)")
    args = parser.parse_args()

    torch.manual_seed(0)
    features = style_features(weights=args.weights)
    content, style, names = load_images(args.size)
    print(f"cnnkit {cnnkit.__version__}; {describe_machine()}")
    print(f"{names}, result {content.shape[-2]}×{content.shape[-1]}, VGG-19 "
          f"{'ImageNet weights ' + os.path.basename(args.weights) if args.weights else 'random features (no --weights)'}")

    baseline_best, cnnkit_best, target = None, None, None
    for round_index in range(args.rounds):
        trace = tutorial_loop(features, content, style, args.steps)
        if target is None:
            target = trace[-1][1] + trace[-1][2]
            print(f"target: the baseline's total loss after {args.steps} evaluations = {target:.4g}")
        seconds = next(t for t, c, s in trace if c + s <= target)
        row = next((t, c, s) for t, c, s in trace if c + s <= target)
        if baseline_best is None or seconds < baseline_best["seconds"]:
            baseline_best = {"seconds": seconds, "step": trace.index(row) + 1, "content": row[1], "style": row[2]}
        print(f"round {round_index + 1}: baseline {seconds:.1f} s", flush=True)
        run = cnnkit_run(features, content, style, target, args)
        if cnnkit_best is None or run["seconds"] < cnnkit_best["seconds"]:
            cnnkit_best = run
        print(f"round {round_index + 1}: cnnkit {run['seconds']:.1f} s", flush=True)

    print(f"\n{'method':<44}{'seconds':>9}{'evals':>7}{'content':>11}{'style':>11}{'speed-up':>10}")
    label = f"cnnkit stylize, {args.scales} scales ({args.coarse_steps}/level)"
    for name, row in (("tutorial L-BFGS, single scale", baseline_best), (label, cnnkit_best)):
        print(f"{name:<44}{row['seconds']:>9.1f}{row['step']:>7}{row['content']:>11.4g}{row['style']:>11.4g}"
              f"{baseline_best['seconds'] / row['seconds']:>9.2f}×")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
