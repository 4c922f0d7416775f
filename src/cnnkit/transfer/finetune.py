"""Fine-tuning a pretrained network through the training engine.

`FineTuneTask` is the task object `cnnkit.train.train(config, task=...)` takes: it builds the
model from the pretrained weights with a new classifier for the target's classes, leaves only
the top k blocks (or all of them) trainable, and gives the engine two parameter groups: the
new classifier at the schedule's learning rate and the pretrained layers at
``pretrained_lr_scale`` times it (Yosinski et al. 2014; Howard & Ruder 2018's discriminative
rates). Frozen blocks keep their batch-norm statistics (their modules stay in eval mode);
``freeze_bn=True`` keeps every batch-norm layer in eval mode, normalising with the stored
running statistics instead of the batch's — the usual choice when batches are small.

Everything else (run folder, checkpoints, exact resume, progress, report) is the engine's.
The engine normalises images with the dataset's mean and std; the task sets them to the
pretrained network's normalisation, which the checkpoint then records, so `load_trained` and
`cnnkit predict` feed the fine-tuned model what it expects.
"""

from __future__ import annotations

from torch import nn

from cnnkit.models import create_model
from cnnkit.transfer.backbone import Pretrained, adapt_input, check_target
from cnnkit.train.task import ClassificationTask

DEFAULT_PRETRAINED_LR_SCALE = 0.1


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's blocks, shallow to deep: the children of each stage in ``stage_names`` (the
    residual blocks of a ResNet), or the stage itself when it has no children."""
    found = []
    for stage in getattr(model, "stage_names", ()):
        module = model.get_submodule(stage)
        children = list(module.named_children())
        found += [(f"{stage}.{name}", child) for name, child in children] if children else [(stage, module)]
    if not found:
        raise ValueError(f"{type(model).__name__} names no stages (stage_names), so it has no blocks to fine-tune")
    return found


def default_top_blocks(model: nn.Module) -> int:
    """The blocks of the last stage (3 for ResNet-20, 2 for ResNet-18)."""
    last = model.get_submodule(model.stage_names[-1])
    return max(1, len(list(last.children())))


class FineTuneTask(ClassificationTask):
    """Classification from pretrained weights with a new head, part of the network trainable.

    top_blocks: how many blocks from the top train (with the classifier); None trains the whole
    network. pretrained_lr_scale: learning rate of pretrained layers relative to the head's.
    freeze_bn: keep every batch-norm layer on its stored statistics.
    head: initial weights of the new classifier, e.g. the logistic regression fitted on the
    classifier's input (`LinearClassifier.as_linear`): fine-tuning then starts from the linear
    probe's accuracy instead of a random head, whose large early gradients would disturb the
    pretrained features ("LP-FT", Kumar et al. 2022). None: the model's own initialisation.
    """

    def __init__(self, pretrained: Pretrained, top_blocks: int | None = None,
                 pretrained_lr_scale: float = DEFAULT_PRETRAINED_LR_SCALE, freeze_bn: bool = False,
                 head: nn.Linear | None = None) -> None:
        if top_blocks is not None and top_blocks < 0:
            raise ValueError(f"top_blocks must be ≥ 0 or None (all), got {top_blocks}")
        if not 0 <= pretrained_lr_scale <= 1:
            raise ValueError(f"pretrained_lr_scale must be in [0, 1], got {pretrained_lr_scale}")
        self.pretrained = pretrained
        self.top_blocks = top_blocks
        self.pretrained_lr_scale = pretrained_lr_scale
        self.freeze_bn = freeze_bn
        self.head = head

    def build_model(self, config, dataset, initialise: bool = True) -> nn.Module:
        """The pretrained network with a fresh classifier for ``dataset``'s classes, its input
        adapted to the dataset's channels, the layers below the top blocks frozen (without
        ``initialise`` the weights are left for the checkpoint's)."""
        check_target(dataset)
        pretrained = self.pretrained
        model = create_model(pretrained.architecture, num_classes=dataset.num_classes,
                             in_channels=pretrained.in_channels)
        if initialise:
            self._initialise(model)
        dataset.mean, dataset.std = adapt_input(model, list(pretrained.mean), list(pretrained.std),
                                                dataset.in_channels)
        self._freeze(model)
        return model

    def _initialise(self, model: nn.Module) -> None:
        """The pretrained weights below the classifier, and the classifier's from ``head``."""
        pretrained = self.pretrained
        head = model.classifier_name + "."
        state = {k: v for k, v in pretrained.model.state_dict().items() if not k.startswith(head)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not key.startswith(head) for key in missing):
            raise ValueError(f"{pretrained.source}: weights do not fit {pretrained.architecture}: "
                             f"missing {missing}, unexpected {unexpected}")
        if self.head is not None:
            classifier = model.get_submodule(model.classifier_name)
            if classifier.weight.shape != self.head.weight.shape:
                raise ValueError(f"initial head {tuple(self.head.weight.shape)} does not fit the classifier "
                                 f"{tuple(classifier.weight.shape)}")
            classifier.load_state_dict(self.head.state_dict())

    def _freeze(self, model: nn.Module) -> None:
        """Freeze every layer below the first of the top blocks; that block, every layer after it
        (in the order the model registers them, which is the forward order of cnnkit's models:
        a LeNet's fully connected layers after its last pooling stage, say) and the classifier train."""
        if self.top_blocks is None:
            frozen = []
        else:
            every = blocks(model)
            if self.top_blocks > len(every):
                raise ValueError(f"top_blocks {self.top_blocks} exceeds the {len(every)} blocks of "
                                 f"{model.architecture} ({', '.join(name for name, _ in every)})")
            first = every[len(every) - self.top_blocks][0] if self.top_blocks else model.classifier_name
            names = [name for name, _ in model.named_modules()]
            above = set(names[names.index(first):]) | {model.classifier_name}  # module names, descendants included

            def trains(module_name: str) -> bool:
                return module_name in above or any(module_name.startswith(top + ".") for top in above)

            for name, parameter in model.named_parameters():
                parameter.requires_grad_(trains(name.rpartition(".")[0]))
            frozen = [module for name, module in model.named_modules() if name and not trains(name)]
        for module in frozen if not self.freeze_bn else model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.register_forward_pre_hook(_keep_statistics)

    def parameter_groups(self, model: nn.Module, config) -> list[dict]:
        """The new classifier at the schedule's rate (``lr_scale`` 1), the trainable pretrained
        parameters at ``pretrained_lr_scale`` times it; frozen parameters in no group."""
        head = model.classifier_name + "."
        groups = [
            {"params": [p for n, p in model.named_parameters() if n.startswith(head) and p.requires_grad],
             "lr_scale": 1.0},
            {"params": [p for n, p in model.named_parameters() if not n.startswith(head) and p.requires_grad],
             "lr_scale": self.pretrained_lr_scale},
        ]
        return [group for group in groups if group["params"]]

    def settings(self) -> dict:
        """What transfer.json records to rebuild this task on resume."""
        return {"top_blocks": self.top_blocks, "pretrained_lr_scale": self.pretrained_lr_scale,
                "freeze_bn": self.freeze_bn, "head_from_linear_probe": self.head is not None}


def _keep_statistics(module: nn.Module, inputs) -> None:
    """Forward pre-hook: normalise with the stored running statistics and never update them."""
    module.training = False
