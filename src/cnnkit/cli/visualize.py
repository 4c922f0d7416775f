"""Command ``visualize``: what a network has learned and where it looks, as PNG figures.

Subcommands filters, maps, deconv, top-patches, occlusion, gradcam and saliency each take a
model (a registry name with optional ``--weights``, or a training run folder / checkpoint), load
an image or a folder of images, call one function of :mod:`cnnkit.explain` and save its figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit import explain
from cnnkit.data import SAMPLE_IMAGES, read_image, sample_image
from cnnkit.models import create_model, list_models

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}

EXAMPLES = """\
examples:
  cnnkit visualize filters                              # AlexNet's first-layer kernels in colour
  cnnkit visualize filters vgg16 --weights vgg16-397923af.pth --layer conv3_1
  cnnkit visualize maps resnet18 photo.jpg --layer layer2 -o figures
  cnnkit visualize deconv alexnet photo.jpg --weights alexnet-owt-7be5be79.pth --layer features.11 --count 9
  cnnkit visualize top-patches resnet20 --weights resnet20-12fca82f.th --images cifar10/ --layer layer2 --channel 5
  cnnkit visualize occlusion runs/digits photo.png --size 8 --stride 2
  cnnkit visualize occlusion runs/digits digit.png --fill 0       # a black square: erase white strokes
  cnnkit visualize gradcam resnet20 --weights resnet20-12fca82f.th --sample chelsea
  cnnkit visualize saliency vgg16 --weights vgg16-397923af.pth photo.jpg

MODEL is a registry name (see 'cnnkit models'; default alexnet) or a run folder or checkpoint
written by 'cnnkit train'. Without --weights or a run, the network is randomly initialised: the
figures then show an untrained network. Layers are module paths (features.3, layer2.1.conv1)
or, for VGG, the paper's names (conv1_1, relu4_2, pool5). Images are resized to the model's
input size and normalised with its mean and standard deviation (ImageNet's for registry models).
Each figure is written to DIR/<subcommand>.png.
"""


@dataclass
class Subject:
    """A model ready for explanation, and how images reach it."""

    model: nn.Module
    name: str
    size: tuple[int, int]
    channels: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    classes: list[str] | None
    trained: bool

    def picture(self, image: torch.Tensor) -> torch.Tensor:
        """(C, H, W) in [0, 1] with the model's channels, resized to its input size."""
        image = image.mean(0, keepdim=True) if self.channels == 1 and image.shape[0] == 3 else image
        image = image.expand(3, -1, -1) if self.channels == 3 and image.shape[0] == 1 else image
        return F.interpolate(image[None], size=self.size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)

    def input(self, pictures: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) normalised for the model."""
        if self.mean is None:
            return pictures
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        return (pictures - mean) / torch.tensor(self.std).view(1, -1, 1, 1)

    def class_name(self, index: int) -> str:
        return f"{self.classes[index]} ({index})" if self.classes else f"class {index}"


def load_subject(spec: str, weights: str | None) -> Subject:
    """A registry name (with optional weights file), or a run folder, checkpoint or weights file
    (`cnnkit.inference.open_model`)."""
    if spec in list_models():
        torch.manual_seed(0)  # random weights, when no file is given, are the same every run
        model = create_model(spec, weights=weights).eval()
        channels, height, width = model.default_input_size
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else (None, None)
        return Subject(model, spec, (height, width), channels, mean, std, None, weights is not None)
    if weights is not None:
        raise ValueError(f"--weights goes with a registry model name; {spec!r} is not one (known: {', '.join(list_models())})")
    if not Path(spec).exists():
        raise ValueError(f"{spec!r} is neither a model name ({', '.join(list_models())}) nor a run folder, "
                         "checkpoint or weights file")
    from cnnkit.cli.train import open_classifier

    opened = open_classifier(spec, "predict")
    return Subject(opened.model, spec, tuple(opened.image_size), opened.in_channels, tuple(opened.mean),
                   tuple(opened.std), list(opened.classes), True)


def _subject(args) -> Subject:
    subject = load_subject(args.model, args.weights)
    if not subject.trained:
        print(f"cnnkit visualize: warning: {args.model} has random weights (no --weights or run folder); "
              "the figures show an untrained network", file=sys.stderr)
    return subject


def _image(args, subject: Subject) -> tuple[torch.Tensor, str]:
    if args.image is not None:
        return subject.picture(read_image(args.image)), str(args.image)
    return subject.picture(sample_image(args.sample)), f"sample:{args.sample}"


def _output(args, kind: str) -> Path:
    directory = Path(args.output)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory}: -o must be a directory for the figures")
    return directory / f"{kind}.png"


def _default_stage(subject: Subject, index: int) -> str:
    stages = getattr(subject.model, "stage_names", ())
    if not stages:
        raise ValueError(f"{subject.name} names no stages; pass --layer")
    return stages[index]


def _report(args, record: dict, lines: list[str]) -> int:
    if args.format == "json":
        print(json.dumps(record))
    else:
        for line in lines:
            print(line)
        print(f"wrote {record['figure']}")
    return 0


def filters(args) -> int:
    subject = _subject(args)
    path, weights = explain.conv_weights(subject.model, args.layer)
    out_channels, in_channels, kh, kw = weights.shape
    how = "in colour (RGB per filter)" if in_channels == 3 else "per input channel (grey = 0)"
    title = f"{subject.name} {path}: {out_channels} kernels {kh}×{kw}×{in_channels}, {how}"
    figure = explain.filters_figure(weights, _output(args, "filters"), title)
    return _report(args, {"model": subject.name, "layer": path, "shape": list(weights.shape), "figure": str(figure)},
                   [f"{subject.name} {path}: kernels {tuple(weights.shape)}"])


def maps(args) -> int:
    subject = _subject(args)
    picture, source = _image(args, subject)
    layer = args.layer or _default_stage(subject, 0)
    path, responses = explain.feature_maps(subject.model, subject.input(picture[None]), layer)
    title = f"{subject.name} {path}: the {min(args.count, len(responses))} most active of {len(responses)} feature maps for {source}"
    figure = explain.feature_maps_figure(responses, picture, _output(args, "maps"), title, count=args.count)
    return _report(args, {"model": subject.name, "image": source, "layer": path, "shape": list(responses.shape), "figure": str(figure)},
                   [f"{subject.name} {path}: feature maps {tuple(responses.shape)} for {source}"])


def deconv(args) -> int:
    subject = _subject(args)
    picture, source = _image(args, subject)
    layer = explain.resolve_layer(subject.model, args.layer or _default_stage(subject, -1))
    x = subject.input(picture[None])
    if args.channel is not None:
        chosen = [(args.channel, None)]
    else:
        chosen = [(channel, position) for channel, position, _ in explain.strongest_activations(subject.model, x, layer, args.count)]
    projections = [explain.deconvnet(subject.model, x, layer, channel, position) for channel, position in chosen]
    what = f"channel {args.channel}" if args.channel is not None else f"the {len(projections)} strongest channels"
    title = f"{subject.name} {layer}: deconvnet projections of {what} for {source}"
    figure = explain.deconvnet_figure(picture, projections, _output(args, "deconv"), title)
    rows = [{"channel": p.channel, "position": list(p.position), "activation": p.activation} for p in projections]
    return _report(args, {"model": subject.name, "image": source, "layer": layer, "projections": rows, "figure": str(figure)},
                   [f"{subject.name} {layer}: channel {p.channel} at {p.position}, activation {p.activation:.4g}" for p in projections])


def _dataset(args, subject: Subject) -> tuple[torch.Tensor, str]:
    """(N, C, H, W) pictures from --images, else crops of the built-in photos."""
    if args.images is not None:
        root = Path(args.images)
        if not root.is_dir():
            raise NotADirectoryError(f"{root}: --images must be a folder of images")
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: args.limit]
        if not paths:
            raise ValueError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        return torch.stack([subject.picture(read_image(p)) for p in paths]), f"{len(paths)} images of {root}"
    pictures = []
    for name in SAMPLE_IMAGES:
        image = sample_image(name)
        h, w = image.shape[-2:]
        pictures.append(subject.picture(image))
        for top in (0, h // 2):  # the four quarters as well
            for left in (0, w // 2):
                pictures.append(subject.picture(image[:, top:top + h // 2, left:left + w // 2]))
    return torch.stack(pictures), f"{len(pictures)} views of the built-in photos"


def top_patches(args) -> int:
    subject = _subject(args)
    pictures, source = _dataset(args, subject)
    layer = explain.resolve_layer(subject.model, args.layer or _default_stage(subject, 1))
    patches = explain.top_patches(subject.model, subject.input(pictures), layer, args.channel, k=args.count)
    title = f"{subject.name} {layer} channel {args.channel}: top {len(patches)} patches of {source} and their projections"
    figure = explain.top_patches_figure(pictures, patches, _output(args, "top-patches"), title)
    rows = [{"image": p.index, "position": list(p.position), "activation": p.activation, "box": list(p.box)} for p in patches]
    return _report(args, {"model": subject.name, "layer": layer, "channel": args.channel, "patches": rows, "figure": str(figure)},
                   [f"#{rank} image {p.index} box {p.box} activation {p.activation:.4g}" for rank, p in enumerate(patches, 1)])


def occlusion(args) -> int:
    subject = _subject(args)
    picture, source = _image(args, subject)
    fill, square = 0.0, "grey"  # 0 in the normalised input: the training set's mean colour
    if args.fill != "mean":
        value = float(args.fill)
        if not 0 <= value <= 1:
            raise ValueError(f"--fill must be 'mean' or a pixel value in [0, 1], got {args.fill}")
        fill = subject.input(torch.full((1, picture.shape[0], 1, 1), value))[0]  # (C, 1, 1), normalised
        square = f"{value:g}-valued"
    result = explain.occlusion_map(subject.model, subject.input(picture[None]), args.target, args.size, args.stride, fill)
    name = subject.class_name(result.target)
    title = (f"{subject.name}: p({name}) with a {result.size}×{result.size} {square} square at each place, "
             f"stride {result.stride} (unoccluded {result.baseline:.3f}); {source}")
    figure = explain.heatmap_figure(picture, result.probability, _output(args, "occlusion"), title, f"p({name}) when occluded")
    return _report(args, {"model": subject.name, "image": source, "target": result.target, "baseline": result.baseline,
                          "min": float(result.probability.min()), "map": result.probability.tolist(), "figure": str(figure)},
                   [f"{subject.name}: p({name}) = {result.baseline:.4f} unoccluded, {float(result.probability.min()):.4f} at worst"])


def gradcam(args) -> int:
    subject = _subject(args)
    picture, source = _image(args, subject)
    result = explain.grad_cam(subject.model, subject.input(picture[None]), args.layer, args.target)
    name = subject.class_name(result.target)
    title = f"{subject.name}: Grad-CAM at {result.layer} for {name} (p = {result.probability:.3f}); {source}"
    figure = explain.heatmap_figure(picture, result.heatmap, _output(args, "gradcam"), title, f"Grad-CAM, {name}")
    return _report(args, {"model": subject.name, "image": source, "layer": result.layer, "target": result.target,
                          "probability": result.probability, "figure": str(figure)},
                   [f"{subject.name}: Grad-CAM at {result.layer} for {name}, p = {result.probability:.4f}"])


def saliency(args) -> int:
    subject = _subject(args)
    picture, source = _image(args, subject)
    result = explain.saliency_map(subject.model, subject.input(picture[None]), args.target)
    name = subject.class_name(result.target)
    title = f"{subject.name}: gradient saliency max_c |∂score/∂pixel| for {name} (p = {result.probability:.3f}); {source}"
    figure = explain.heatmap_figure(picture, result.heatmap, _output(args, "saliency"), title, f"saliency, {name}")
    return _report(args, {"model": subject.name, "image": source, "target": result.target,
                          "probability": result.probability, "figure": str(figure)},
                   [f"{subject.name}: saliency for {name}, p = {result.probability:.4f}"])


def _common(parser: argparse.ArgumentParser, image: bool) -> None:
    parser.add_argument("model", nargs="?", default="alexnet", metavar="MODEL",
                        help="registry name or run folder / checkpoint (default: %(default)s)")
    if image:
        parser.add_argument("image", nargs="?", metavar="IMAGE", help="image file (default: a built-in photo)")
        parser.add_argument("--sample", default="chelsea", choices=SAMPLE_IMAGES, help="built-in photo used without IMAGE (default: %(default)s)")
    parser.add_argument("--weights", metavar="FILE", help="weights for a registry model (.pth in torchvision's format, .safetensors)")
    parser.add_argument("-o", "--output", default="figures", metavar="DIR", help="folder for the figure (default: %(default)s)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="how to print the result")


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "visualize", help="figures of filters, feature maps, deconvnet projections, occlusion, Grad-CAM, saliency",
        description="See what a network has learned (filters, feature maps, Zeiler & Fergus's deconvnet, "
        "top dataset patches) and where it looks for a class (occlusion, Grad-CAM, gradient saliency).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    def sub(name: str, help_text: str, handler, image: bool = True) -> argparse.ArgumentParser:
        child = kinds.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(child, image)
        child.set_defaults(func=handler)
        return child

    child = sub("filters", "a layer's kernels as images (the first layer in colour)", filters, image=False)
    child.add_argument("--layer", help="convolution to show (default: the first)")
    child = sub("maps", "the feature maps of a layer for an image", maps)
    child.add_argument("--layer", help="layer (default: the model's first stage)")
    child.add_argument("--count", type=int, default=31, help="how many of the most active channels (default: %(default)s)")
    child = sub("deconv", "Zeiler & Fergus deconvnet: project the strongest activations of a layer to pixels", deconv)
    child.add_argument("--layer", help="layer (default: the model's last stage)")
    child.add_argument("--channel", type=int, help="project this channel's maximum instead of the strongest channels")
    child.add_argument("--count", type=int, default=9, help="how many of the strongest channels (default: %(default)s)")
    child = sub("top-patches", "the dataset patches that most activate a channel, with their projections", top_patches, image=False)
    child.add_argument("--images", metavar="DIR", help="folder of images, searched recursively (default: views of the built-in photos)")
    child.add_argument("--limit", type=int, default=1000, help="at most this many images from DIR (default: %(default)s)")
    child.add_argument("--layer", help="layer (default: the model's second stage)")
    child.add_argument("--channel", type=int, default=0, help="channel (default: %(default)s)")
    child.add_argument("--count", type=int, default=9, help="how many patches (default: %(default)s)")
    child = sub("occlusion", "class probability as a grey square slides over the image (Zeiler & Fergus §4.2)", occlusion)
    child.add_argument("--target", type=int, help="class index (default: the prediction)")
    child.add_argument("--size", type=int, help="square side in input pixels (default: a quarter of the input)")
    child.add_argument("--stride", type=int, help="step between squares (default: an eighth of the input)")
    child.add_argument("--fill", default="mean", metavar="mean|VALUE",
                       help="the square's colour: the training set's mean (the paper's grey square) or a pixel "
                            "value in [0, 1], such as 0 to erase white strokes on black (default: %(default)s)")
    child = sub("gradcam", "Grad-CAM class activation map (Selvaraju et al. 2017)", gradcam)
    child.add_argument("--layer", help="layer (default: the model's last stage)")
    child.add_argument("--target", type=int, help="class index (default: the prediction)")
    child = sub("saliency", "gradient saliency: max_c |d score / d pixel| (Simonyan et al. 2014)", saliency)
    child.add_argument("--target", type=int, help="class index (default: the prediction)")
