"""Transfer learning: feature extraction, intermediate-layer probes, fine-tuning, the advisor.

    from cnnkit.transfer import advise, transfer
    advice = advise("resnet20-12fca82f.th", "digits")      # quadrant, strategy, measurements, why
    print(advice.explanation)
    result = transfer("resnet20-12fca82f.th", "digits", strategy="auto")   # runs/resnet20-digits/

`prepare` loads a pretrained network and a target dataset and adapts them (image size,
channels); `probe_layers` fits a logistic regression on each stage's cached features;
`FineTuneTask` fine-tunes through the training engine; `advise` reads the lecture's table.
"""

from cnnkit.transfer.advisor import Advice, advise, batchnorm_divergence
from cnnkit.models.recognition import recognise_architecture
from cnnkit.transfer.backbone import Pretrained, adapt_input, load_pretrained
from cnnkit.transfer.features import HEAD_INPUT, FeatureCache, compute_features, default_cache_dir, layer_names
from cnnkit.transfer.finetune import FineTuneTask, blocks
from cnnkit.transfer.linear import LinearClassifier, fit_linear, fit_logistic
from cnnkit.transfer.probe import LayerScore, Probe, Target, fit_layer, prepare, probe_layers
from cnnkit.transfer.strategies import STRATEGY_NAMES, TransferResult, transfer

__all__ = [
    "HEAD_INPUT",
    "STRATEGY_NAMES",
    "Advice",
    "FeatureCache",
    "FineTuneTask",
    "LayerScore",
    "LinearClassifier",
    "Pretrained",
    "Probe",
    "Target",
    "TransferResult",
    "adapt_input",
    "advise",
    "batchnorm_divergence",
    "blocks",
    "compute_features",
    "default_cache_dir",
    "fit_layer",
    "fit_linear",
    "fit_logistic",
    "layer_names",
    "load_pretrained",
    "prepare",
    "probe_layers",
    "recognise_architecture",
    "transfer",
]
