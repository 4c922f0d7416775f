"""Intermediate features by name, taken from a model's own forward pass.

Transfer-learning probes, detection backbones and visualisations read the outputs of inner
layers. Rather than re-implement a network's forward pass, :func:`extract_features` hooks
the named submodules and runs the model once, stopping as soon as the last requested output
exists.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from torch import Tensor, nn


class _AllFeaturesCaptured(Exception):
    """Raised inside the forward pass once every requested output is captured, to stop it."""


def extract_features(model: nn.Module, x: Tensor, names: str | Iterable[str]) -> dict[str, Tensor]:
    """Outputs of the submodules ``names`` (dotted paths, as in ``model.named_modules()``) for input ``x``.

    Runs ``model(x)`` with a forward hook on each named submodule and returns ``{name: output}``
    in the order asked. The forward pass stops right after the last requested output, so
    ``extract_features(resnet, x, ["layer2"])`` never computes ``layer3``, ``layer4`` or the head.
    A module called several times in one pass (a shared ReLU) gives its first output. Outputs are
    copies, so an in-place operation later in the network (``ReLU(inplace=True)`` after a
    convolution) cannot change them; they keep their autograd history unless the caller runs
    under ``torch.no_grad()``. Models expose their main stages as ``model.stage_names``.

    Raises ``ValueError`` for a name that is not a submodule (listing close and all available
    names) or a submodule the forward pass never reached (a GoogLeNet auxiliary classifier in
    eval mode). Hooks are removed afterwards, also on error.
    """
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("extract_features needs at least one module name")
    modules = {name: _submodule(model, name) for name in dict.fromkeys(names)}

    features: dict[str, Tensor] = {}

    def capture(name: str):
        def hook(module: nn.Module, inputs: tuple, output) -> None:
            if name in features:
                return
            features[name] = output.clone() if isinstance(output, Tensor) else output
            if len(features) == len(modules):
                raise _AllFeaturesCaptured

        return hook

    handles = [module.register_forward_hook(capture(name)) for name, module in modules.items()]
    try:
        model(x)
    except _AllFeaturesCaptured:
        pass
    finally:
        for handle in handles:
            handle.remove()
    never_ran = [name for name in modules if name not in features]
    if never_ran:
        raise ValueError(
            f"{type(model).__name__}: module(s) {', '.join(never_ran)} did not run in the forward pass "
            f"(mode: {'train' if model.training else 'eval'})"
        )
    return {name: features[name] for name in names}


def _submodule(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        available = [module_name for module_name, _ in model.named_modules() if module_name]
        close = difflib.get_close_matches(name, available, n=5, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(
            f"{type(model).__name__} has no submodule {name!r}; {hint}available: {', '.join(available)}"
        ) from None
