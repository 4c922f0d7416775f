"""Inference throughput at 224×224: cnnkit's prepared model, torchvision eager, and ONNX Runtime.

For ResNet-18 and ResNet-50 (random weights with realistic batch-norm statistics), at batch 1
and batch 16, one process times, interleaved round by round:

    torchvision eager     baseline: torchvision.models.NAME().eval(), NCHW, torch.inference_mode()
    cnnkit prepared       what `cnnkit predict` runs: create_model + prepare_for_inference
                          (batch norm folded, channels_last, no autograd), inference_mode
    ONNX Runtime          cnnkit's `cnnkit export --format onnx` file in onnxruntime (CPU provider)

and prints images/s with the ratio to the baseline. All three are checked to give the same
logits (max abs difference ≤ 1e-3 relative to the largest logit) before timing.

    python benchmarks/inference.py            # about 2 minutes on 2 cores
    python benchmarks/inference.py --models resnet18 --reps 20
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onnxruntime
import torch
import torchvision

from cnnkit.models import create_model
from cnnkit.models.export import export_model
from cnnkit.models.speed import prepare_for_inference
from machine import best_times, describe_machine


def realistic(model: torch.nn.Module) -> torch.nn.Module:
    """Give batch norms non-trivial statistics (as trained weights have), then eval mode."""
    torch.manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
    return model.eval()


def variants(name: str, folder: Path) -> dict:
    """Runner per variant: a function of an (N, 3, 224, 224) batch returning logits."""
    baseline = realistic(getattr(torchvision.models, name)(weights=None))
    model = create_model(name)
    model.load_state_dict(baseline.state_dict())  # the same weights in both libraries
    prepared = prepare_for_inference(model.eval(), (3, 224, 224))
    onnx_path = export_model(model, folder / f"{name}.onnx", (3, 224, 224)).path
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def eager(x):
        with torch.inference_mode():
            return baseline(x)

    def cnnkit(x):
        with torch.inference_mode():
            return prepared(x)

    def onnx(x):
        return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])

    return {"torchvision eager": eager, "cnnkit prepared": cnnkit, "ONNX Runtime": onnx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    print(f"cnnkit inference benchmark on {describe_machine()}, onnxruntime {onnxruntime.__version__}")
    print(f"{'model':<10}{'batch':>6}  {'variant':<20}{'ms/batch':>10}{'images/s':>10}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            runners = variants(name, Path(folder))
            for batch_size in (int(b) for b in args.batch_sizes.split(",")):
                x = torch.rand(batch_size, 3, 224, 224)
                outputs = {label: run(x) for label, run in runners.items()}
                reference = outputs["torchvision eager"]
                for label, logits in outputs.items():
                    error = float((logits - reference).abs().max() / reference.abs().max())
                    assert error <= 1e-3, f"{name} {label}: logits differ by {error:.1e}"
                times = best_times({label: (lambda run=run: run(x)) for label, run in runners.items()}, args.reps, args.warmup)
                base = times["torchvision eager"]
                for label, seconds in times.items():
                    print(f"{name:<10}{batch_size:>6}  {label:<20}{seconds * 1e3:>10.1f}{batch_size / seconds:>10.1f}{base / seconds:>7.2f}×", flush=True)


if __name__ == "__main__":
    main()
