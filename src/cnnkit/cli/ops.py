"""Commands on the operations: ``convolve``, ``pool`` and ``shape``."""

from __future__ import annotations

import argparse
import json
import time

from cnnkit.data import SAMPLE_IMAGES, read_image, sample_image, save_image
from cnnkit.explain import filtering_figure, viewable
from cnnkit.ops import PADDING_MODES, Layer, l2_pool, max_pool, avg_pool, receptive_field
from cnnkit.ops.filters import KERNELS, filter_image, parse_kernel

CONVOLVE_EXAMPLES = """\
examples:
  cnnkit convolve                                   # Sobel-x on the built-in 'camera' photo
  cnnkit convolve photo.jpg --kernel gaussian --sigma 3 -o blurred.png
  cnnkit convolve --kernel '1,0,-1;2,0,-2;1,0,-1' --stride 2 --padding valid
  cnnkit convolve --sample astronaut --kernel emboss --show-steps steps.png

Named kernels: """ + ", ".join(KERNELS) + """.
Kernels are applied as cross-correlation (what CNN layers compute); --flip applies the
lecture's convolution, g(i,j) = sum x(a,b) k(i-a, j-b), with the kernel flipped.
Output size per direction: floor((n + 2p - d(K-1) - 1)/s) + 1.
"""

POOL_EXAMPLES = """\
examples:
  cnnkit pool                                       # 2x2 max pooling, stride 2, of 'camera'
  cnnkit pool photo.jpg --kind l2 --size 3 --stride 2 --padding 1 -o pooled.png
  cnnkit pool --kind avg --size 4 --show-steps steps.png

max:  out = max over the window;  avg: out = mean over the window;
l2:   out = sqrt(sum of squares over the window), shown divided by sqrt(window size).
"""

SHAPE_EXAMPLES = """\
layers are written K[,s[,p[,d]]] with an optional name before a colon:
  K   kernel size (5, or 5x3 for height x width)     s  stride (default 1)
  p   padding: a number, same, valid or full (default 0)     d  dilation (default 1)

examples:
  cnnkit shape                                      # LeNet-5 on a 32x32 input
  cnnkit shape --input 224 conv1:7,2,3 pool1:3,2,1 conv2:3,1,1 conv3:3,1,1
  cnnkit shape --input 64x48 5,1,same 2,2 3,1,0,2 --format json

Per layer:  n_out = floor((n + 2p - d(K-1) - 1)/s) + 1,  jump j_out = j_in * s,
receptive field r_out = r_in + d(K-1) * j_in,  start_out = start_in + (d(K-1)/2 - p) * j_in.
"""

LENET_LAYERS = ["conv1:5", "pool1:2,2", "conv2:5", "pool2:2,2", "conv3:5"]


def _input_image(args) -> tuple:
    """The image to work on, and where it came from."""
    if args.image is not None:
        return read_image(args.image, gray=args.gray or None), str(args.image)
    return sample_image(args.sample, gray=args.gray or None), f"sample:{args.sample}"


def _padding(text: str):
    if text in ("same", "valid", "full"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"padding must be a number, same, valid or full, got {text!r}") from None
    if value < 0:
        raise ValueError(f"padding must be non-negative, got {value}")
    return value


def _report(args, record: dict) -> None:
    if args.format == "json":
        print(json.dumps(record))
    else:
        print(f"{record['input']}: {record['input_shape']} -> {record['output_shape']} in {record['seconds']:.3f} s")
        for key in ("output", "figure"):
            if record.get(key):
                print(f"wrote {record[key]}")


def _image_arguments(parser: argparse.ArgumentParser, default_output: str) -> None:
    parser.add_argument("image", nargs="?", help="image file (PNG, JPEG, …); default: a built-in photo")
    parser.add_argument("--sample", default="camera", choices=SAMPLE_IMAGES, help="built-in photo used when no IMAGE is given (default: camera)")
    parser.add_argument("--gray", action="store_true", help="convert the image to grayscale first")
    parser.add_argument("--stride", type=int, default=None, help="step between windows (default: %(default)s)")
    parser.add_argument("-o", "--output", default=default_output, help="output image (default: %(default)s)")
    parser.add_argument("--show-steps", metavar="FIGURE", help="also save a figure of input, kernel and output side by side")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="how to print the result")


def convolve(args) -> int:
    image, source = _input_image(args)
    options = {name: value for name, value in (("sigma", args.sigma), ("size", args.kernel_size)) if value is not None}
    kernel = parse_kernel(args.kernel, **options)
    start = time.perf_counter()
    output = filter_image(image, kernel, args.stride or 1, _padding(args.padding), args.dilation, args.mode, args.flip)
    seconds = time.perf_counter() - start
    signed = abs(float(kernel.sum())) < 1e-6  # derivative kernels: show the sign around mid-grey
    picture = viewable(output, signed)
    save_image(picture, args.output)
    if args.show_steps:
        filtering_figure(image, picture, args.show_steps, kernel, title=f"{args.kernel} ({'convolution' if args.flip else 'cross-correlation'})")
    _report(args, {
        "input": source, "kernel": kernel.tolist(), "input_shape": list(image.shape),
        "output_shape": list(output.shape), "min": float(output.min()), "max": float(output.max()),
        "seconds": seconds, "output": args.output, "figure": args.show_steps,
    })
    return 0


def pool(args) -> int:
    image, source = _input_image(args)
    padding = _padding(args.padding)
    if isinstance(padding, str):
        raise ValueError("pooling padding must be a number")
    stride = args.stride or args.size
    start = time.perf_counter()
    if args.kind == "max":
        output = max_pool(image[None], args.size, stride, padding)[0]
    elif args.kind == "avg":
        output = avg_pool(image[None], args.size, stride, padding)[0]
    else:
        output = l2_pool(image[None], args.size, stride, padding)[0] / args.size  # RMS: sqrt(mean of squares)
    seconds = time.perf_counter() - start
    save_image(output, args.output)
    if args.show_steps:
        filtering_figure(image, output, args.show_steps, title=f"{args.kind} pooling {args.size}×{args.size}, stride {stride}")
    _report(args, {
        "input": source, "kind": args.kind, "size": args.size, "stride": stride, "padding": padding,
        "input_shape": list(image.shape), "output_shape": list(output.shape), "seconds": seconds,
        "output": args.output, "figure": args.show_steps,
    })
    return 0


def _parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise ValueError(f"size {text!r} must be N or HxW with positive integers, e.g. 32 or 64x48")
    return (values[0], values[-1])


def parse_layer(token: str, index: int) -> tuple[Layer, Layer]:
    """One ``[name:]K[,s[,p[,d]]]`` token as a (height, width) pair of layers."""
    name, _, spec = token.rpartition(":")
    name = name or f"layer {index}"
    fields = spec.split(",")
    if not 1 <= len(fields) <= 4 or not fields[0]:
        raise ValueError(f"{token!r}: a layer is K[,s[,p[,d]]], e.g. 3,1,1")
    try:
        kh, kw = _parse_size(fields[0])
        stride = int(fields[1]) if len(fields) > 1 else 1
        padding = _padding(fields[2]) if len(fields) > 2 else 0
        dilation = int(fields[3]) if len(fields) > 3 else 1
    except ValueError as error:
        raise ValueError(f"{token!r}: {error}") from None
    return tuple(Layer(k, stride, padding, dilation, name=name) for k in (kh, kw))


def _by(values) -> str:
    """(height, width) as "H×W"."""
    return "×".join(f"{value:g}" for value in values)


def shape(args) -> int:
    height, width = _parse_size(args.input)
    tokens = args.layers or LENET_LAYERS
    layers = [parse_layer(token, index) for index, token in enumerate(tokens, start=1)]
    rows = receptive_field([pair[0] for pair in layers], height)
    cols = receptive_field([pair[1] for pair in layers], width)
    table = [
        {
            "layer": r.layer.name, "kernel": [r.layer.kernel, c.layer.kernel], "stride": r.layer.stride,
            "padding": r.layer.padding, "dilation": r.layer.dilation, "output": [r.size, c.size],
            "jump": [r.jump, c.jump], "receptive_field": [r.receptive_field, c.receptive_field],
            "start": [r.start, c.start],
        }
        for r, c in zip(rows, cols)
    ]
    if args.format == "json":
        print(json.dumps({"input": [height, width], "layers": table}))
        return 0
    header = f"{'layer':<12}{'K':>7}{'s':>4}{'p':>6}{'d':>4}{'output':>11}{'jump':>9}{'field':>9}{'start':>12}"
    print(f"input {height}×{width}")
    print(header)
    print("-" * len(header))
    for row in table:
        print(
            f"{row['layer']:<12}{_by(row['kernel']):>7}{row['stride']:>4}{str(row['padding']):>6}{row['dilation']:>4}"
            f"{_by(row['output']):>11}{_by(row['jump']):>9}{_by(row['receptive_field']):>9}{_by(row['start']):>12}"
        )
    return 0


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "convolve", help="apply a kernel (Sobel, Gaussian, …) to an image",
        description="Slide a kernel over every channel of an image and save the feature map, scaled for viewing.",
        epilog=CONVOLVE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _image_arguments(parser, "convolved.png")
    parser.add_argument("--kernel", default="sobel-x", help="a named kernel or numbers with rows split by ';' (default: %(default)s)")
    parser.add_argument("--sigma", type=float, help="standard deviation for the gaussian and unsharp kernels (default 1)")
    parser.add_argument("--kernel-size", type=int, help="size of the box, identity and gaussian kernels")
    parser.add_argument("--padding", default="same", help="a number, same, valid or full (default: %(default)s)")
    parser.add_argument("--mode", default="replicate", choices=PADDING_MODES, help="how to pad the border (default: %(default)s)")
    parser.add_argument("--dilation", type=int, default=1, help="spacing between kernel taps (default: %(default)s)")
    parser.add_argument("--flip", action="store_true", help="true convolution: flip the kernel before sliding it")
    parser.set_defaults(func=convolve)

    parser = subparsers.add_parser(
        "pool", help="max, average or L2 pooling of an image",
        description="Pool every channel of an image over rectangular windows and save the result.",
        epilog=POOL_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _image_arguments(parser, "pooled.png")
    parser.add_argument("--kind", choices=("max", "avg", "l2"), default="max", help="pooling function (default: %(default)s)")
    parser.add_argument("--size", type=int, default=2, help="window size K (default: %(default)s)")
    parser.add_argument("--padding", default="0", help="zero padding on each side, at most K/2 (default: %(default)s)")
    parser.set_defaults(func=pool)

    parser = subparsers.add_parser(
        "shape", help="output sizes and receptive fields of a stack of layers",
        description="Print each layer's output size, jump and receptive field for an input size, "
        "and refuse layers that do not fit.",
        epilog=SHAPE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("layers", nargs="*", metavar="LAYER", help="layers as [name:]K[,s[,p[,d]]] (default: LeNet-5)")
    parser.add_argument("--input", default="32", help="input size N or HxW (default: %(default)s)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="how to print the result")
    parser.set_defaults(func=shape)
