"""Stage 3: the classic ImageNet architectures side by side — parameters, multiply-adds, depth and
time per image on this CPU — with each one's idea in a sentence."""

from __future__ import annotations

import time

import torch

from cnnkit.figures import pyplot
from cnnkit.models import create_model
from cnnkit.nn import depth, summarize
from cnnkit.tour.section import Section, TourContext

ARCHITECTURES = (
    ("alexnet", "AlexNet (2012)", 56.5, "five convolutions (11×11 stride 4 first), ReLU, overlapping max pooling, dropout in three large fully connected layers"),
    ("vgg16", "VGG-16 (2014)", 71.6, "only 3×3 convolutions, stacked: two see 5×5 and three 7×7 with fewer parameters and more non-linearity"),
    ("googlenet", "GoogLeNet (2014)", 69.8, "Inception modules run 1×1, 3×3, 5×5 and pooling in parallel, with 1×1 reductions to keep the cost down"),
    ("resnet18", "ResNet-18 (2015)", 69.8, "residual blocks learn F(x) and add the shortcut x, so very deep networks still train"),
    ("resnet50", "ResNet-50 (2015)", 76.1, "bottleneck blocks (1×1 reduce, 3×3, 1×1 expand) make 50 layers cheaper than VGG-16"),
)
"""Registry name, label, ImageNet top-1 % of torchvision's published weights, and the idea."""


def run(section: Section, context: TourContext) -> None:
    section.say(
        "The ImageNet networks of the lecture, built by cnnkit and measured here on a 3×224×224 image. "
        "Multiply-adds count each product of a weight and an input once; depth counts the layers with weights "
        "(convolutions and fully connected) on the longest path from input to output, as the papers do."
    )
    rows, measured, summaries = [], [], {}
    repeats = 1 if context.quick else 3
    for name, label, top1, idea in ARCHITECTURES:
        model = create_model(name).eval()
        summary = summaries[name] = summarize(model, (3, 224, 224))
        seconds = _seconds_per_image(model, repeats)
        layers = depth(model)
        measured.append((label, summary.total_params, summary.multiply_adds, layers, top1, seconds))
        rows.append([label, f"{summary.total_params / 1e6:.1f} M", f"{summary.multiply_adds / 1e9:.2f} G", layers,
                     f"{seconds * 1e3:.0f} ms", f"{top1:.1f} %", idea])
        section.metrics[name] = {"parameters": summary.total_params, "multiply_adds": summary.multiply_adds,
                                 "depth": layers, "seconds_per_image": round(seconds, 4)}
    section.table("The architectures at 224×224 (time: one image, no batching, this machine; ImageNet top-1: "
                  "torchvision's published figures for its trained weights, not measured here)",
                  ["network", "parameters", "multiply-adds", "depth", "time per image", "ImageNet top-1", "idea"], rows)
    _comparison_figure(measured, section.figure("comparison", "Accuracy against cost: each disc's area is the parameter count"))
    alexnet, vgg, googlenet = measured[0], measured[1], measured[2]
    section.say(
        f"GoogLeNet is {googlenet[3] / alexnet[3]:.0f}× as deep as AlexNet with {alexnet[1] / googlenet[1]:.0f}× fewer "
        f"parameters: its 1×1 convolutions reduce the channels before the expensive filters, and global average "
        f"pooling replaces the large fully connected layers that hold {_fully_connected_share(summaries['alexnet']):.0%} of "
        f"AlexNet's parameters. VGG-16 is the most expensive of all ({vgg[2] / 1e9:.1f} G multiply-adds). ResNet's "
        "shortcuts made depth pay: ResNet-50 is more accurate than VGG-16 at a quarter of the cost."
    )
    section.command("cnnkit models")
    for name, *_ in ARCHITECTURES:
        section.command(f"cnnkit summary {name} --input 3x224x224")


def _seconds_per_image(model: torch.nn.Module, repeats: int) -> float:
    """Best time of ``repeats`` forward passes of one 224×224 image (after one warm-up pass)."""
    image = torch.rand(1, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.inference_mode():
        model(image)
        for _ in range(repeats):
            start = time.perf_counter()
            model(image)
            best = min(best, time.perf_counter() - start)
    return best


def _fully_connected_share(summary) -> float:
    """The fraction of the parameters that sit in fully connected layers."""
    return sum(layer.trainable_params for layer in summary.layers if layer.type == "Linear") / summary.total_params


def _comparison_figure(measured, path) -> None:
    plt = pyplot()
    figure, (cost_axis, depth_axis) = plt.subplots(1, 2, figsize=(12, 4.6), layout="constrained", width_ratios=(3, 2))
    offsets = ((0, 22), (0, 28), (-45, 22), (45, -22), (0, 22))  # points, so that close discs keep readable labels
    for (label, parameters, multiply_adds, layers, top1, _), offset in zip(measured, offsets):
        cost_axis.scatter(multiply_adds / 1e9, top1, s=parameters / 1e5, alpha=0.5)
        cost_axis.annotate(f"{label.split(' (')[0]}, {parameters / 1e6:.0f} M", (multiply_adds / 1e9, top1), xytext=offset,
                           textcoords="offset points", ha="center", va="center", fontsize=9)
    cost_axis.set_xscale("log")
    cost_axis.xaxis.set_major_formatter("{x:g}")
    cost_axis.set_xlabel("multiply-adds per 224×224 image (G, log scale)")
    cost_axis.set_ylabel("ImageNet top-1 accuracy (%, published)")
    cost_axis.set_xlim(0.4, max(m[2] for m in measured) / 1e9 * 2)
    cost_axis.set_ylim(50, 82)
    cost_axis.grid(alpha=0.3)
    cost_axis.set_title("accuracy against cost")
    names = [m[0].split(" (")[0] for m in measured]
    depth_axis.barh(names, [m[3] for m in measured], color="tab:gray")
    for index, m in enumerate(measured):
        depth_axis.text(m[3] + 0.5, index, f"{m[3]} layers, {m[5] * 1e3:.0f} ms", va="center", fontsize=9)
    depth_axis.invert_yaxis()
    depth_axis.set_xlim(0, max(m[3] for m in measured) * 1.6)
    depth_axis.set_xlabel("depth (weighted layers on the longest path)")
    depth_axis.set_title("depth, and time per image on this CPU")
    figure.savefig(path, dpi=90)
    plt.close(figure)
