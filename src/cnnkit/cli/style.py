"""Command ``stylize``: neural style transfer (Gatys et al.) from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnkit.data import read_image, save_image
from cnnkit.style import WEIGHTS_HINT, StyleConfig, style_features, stylize as run_stylize
from cnnkit.style.samples import sample_pair
from cnnkit.style.transfer import PRECISIONS

EXAMPLES = """\
examples:
  cnnkit stylize                                   # Tübingen in the style of Starry Night (or built-in photos)
  cnnkit stylize photo.jpg painting.jpg -o out.png --weights vgg19-dcbb9e9d.pth
  cnnkit stylize photo.jpg painting.jpg --size 512 --steps 300 --scales 3 --weights vgg19-dcbb9e9d.pth
  cnnkit stylize photo.jpg scream.jpg --preserve-color --pooling avg --tv-weight 10
  cnnkit stylize photo.jpg painting.jpg --optimizer adam --steps 500 --init noise --seed 1
  cnnkit stylize photo.jpg painting.jpg --save-every 20 --format json

Painterly results need VGG-19 trained on ImageNet: torchvision's vgg19-dcbb9e9d.pth
(https://download.pytorch.org/models/vgg19-dcbb9e9d.pth), passed with --weights; nothing is
downloaded. Without it the features are random and the result is only a texture-like blend.

The defaults are fast on a CPU (256 px, 2 scales, 100 L-BFGS steps: about a minute on 2 cores).
Gatys et al.'s full size is --size 512 --steps 500 (--scales 3 reaches it sooner); a result of
1024 px wants --scales 4. Losses: content = mean (F - P)^2 at relu4_2; style = sum over
relu1_1 ... relu5_1 of mean (G - A)^2 with G = F F^T / (C H W); total = content-weight x content +
style-weight x style + tv-weight x total variation.
"""


def stylize(args) -> int:
    if (args.content is None) != (args.style is None):
        raise ValueError("give both CONTENT and STYLE images, or neither for the built-in pair")
    if args.content is None:
        content, content_name, style, style_name = sample_pair()
    else:
        content, content_name = read_image(args.content, gray=False), str(args.content)
        style, style_name = read_image(args.style, gray=False), str(args.style)
    output = Path(args.output)
    if output.is_dir():
        raise IsADirectoryError(f"{output}: is a directory, expected an output image such as stylized.png")
    config = StyleConfig(
        size=args.size, style_scale=args.style_scale, steps=args.steps, scales=args.scales,
        content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
        optimizer=args.optimizer, learning_rate=args.learning_rate, init=args.init, pooling=args.pooling,
        precision=args.precision, preserve_color=args.preserve_color, seed=args.seed,
    )
    config.check()
    if args.weights is None:
        print(f"cnnkit stylize: warning: {WEIGHTS_HINT}", file=sys.stderr)
    features = style_features(args.weights, (config.content_layer, *config.style_layers), config.pooling, config.seed)

    snapshots = []

    def save_snapshot(step) -> None:
        if args.save_every and step.step % args.save_every == 0:
            path = output.with_name(f"{output.stem}-{step.size[0]}x{step.size[1]}-{step.step:04d}.png")
            save_image(step.image, path)
            snapshots.append(str(path))

    result = run_stylize(content, style, config, features=features, callback=save_snapshot if args.save_every else None)
    save_image(result.image, output)
    last = result.history[-1]
    record = {
        "content": content_name, "style": style_name, "output": str(output), "size": list(result.image.shape[-2:]),
        "seconds": round(result.seconds, 2), "steps": len(result.history), "content_loss": last["content"],
        "style_loss": last["style"], "tv_loss": last["tv"], "pretrained": result.pretrained, "snapshots": snapshots,
    }
    if args.format == "json":
        print(json.dumps(record))
    else:
        print(f"{content_name} in the style of {style_name}: {record['size'][0]}×{record['size'][1]}, "
              f"{record['steps']} steps in {record['seconds']:.1f} s; content loss {last['content']:.4g}, "
              f"style loss {last['style']:.4g}")
        if snapshots:
            print(f"wrote {len(snapshots)} intermediate images beside the output")
        print(f"wrote {output}")
    return 0


def add_commands(subparsers) -> None:
    defaults = StyleConfig()
    parser = subparsers.add_parser(
        "stylize", help="neural style transfer: a photo painted in the style of an artwork",
        description="Render CONTENT in the style of STYLE (Gatys, Ecker & Bethge 2016) by optimising the image's "
        "VGG-19 responses: content at relu4_2, style as Gram matrices at relu1_1 ... relu5_1.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("content", nargs="?", metavar="CONTENT", help="photo to restyle (default: tubingen.jpg or a built-in photo)")
    parser.add_argument("style", nargs="?", metavar="STYLE", help="painting whose style to use (default: starry_night.jpg or a built-in texture)")
    parser.add_argument("-o", "--output", default="stylized.png", help="output image (default: %(default)s)")
    parser.add_argument("--weights", metavar="FILE", help="ImageNet VGG-19 weights, torchvision's vgg19-dcbb9e9d.pth (default: random features)")
    parser.add_argument("--size", type=int, default=256, help="longer side of the result in pixels (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=100, help="optimiser steps per scale (default: %(default)s)")
    parser.add_argument("--scales", type=int, default=2, help="coarse-to-fine levels, each coarser one half the size (default: %(default)s)")
    parser.add_argument("--style-scale", type=float, default=defaults.style_scale, help="style image size relative to --size (default: %(default)s)")
    parser.add_argument("--style-weight", type=float, default=defaults.style_weight, help="beta, weight of the style loss (default: %(default)g)")
    parser.add_argument("--content-weight", type=float, default=defaults.content_weight, help="alpha, weight of the content loss (default: %(default)g)")
    parser.add_argument("--tv-weight", type=float, default=defaults.tv_weight, help="weight of total-variation smoothing (default: %(default)g)")
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default=defaults.optimizer, help="(default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="Adam's step on pixels in [0, 1] (default: %(default)g)")
    parser.add_argument("--init", choices=("content", "noise"), default=defaults.init, help="starting image (default: %(default)s)")
    parser.add_argument("--pooling", choices=("max", "avg"), default=defaults.pooling, help="VGG's pooling; avg as Gatys et al. prefer (default: %(default)s)")
    parser.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                        help="VGG-19's arithmetic; bfloat16 (losses still in float32) is about twice as fast where the CPU "
                        "has it natively (default on this machine: %(default)s)")
    parser.add_argument("--preserve-color", action="store_true", help="transfer luminance only and keep the content's colours")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed for noise and random features (default: %(default)s)")
    parser.add_argument("--save-every", type=int, default=0, metavar="N", help="also save the image every N steps, beside the output")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="how to print the result")
    parser.set_defaults(func=stylize)
