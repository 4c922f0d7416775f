"""Safe loading and atomic saving of weights: QUALITY.md reliability cases 1-6 and the API."""

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import tracemalloc
from collections import OrderedDict

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from cnnkit.models.weights import (
    CorruptCheckpointError,
    UnsafeCheckpointError,
    WeightsError,
    WeightsMismatchError,
    load_weights,
    read_metadata,
    save_weights,
)


class TinyNet(nn.Module):
    """conv-bn-relu trunk and a linear classifier named like torchvision's ResNet ("fc")."""

    classifier_name = "fc"

    def __init__(self, num_classes=10, width=8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))  # (N, width, H, W)
        return self.fc(x.mean((2, 3)))


def trained_tiny(num_classes=10, seed=0):
    torch.manual_seed(seed)
    model = TinyNet(num_classes)
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-1, 1)
        model.bn1.running_var.uniform_(0.5, 2)
        model.bn1.num_batches_tracked.fill_(7)
    return model


def assert_same_state(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# --- case 1: a pickle that would run code -----------------------------------------------------


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": TinyNet().state_dict(), "payload": RunsCode(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_weights(TinyNet(), path)
    message = str(error.value)
    assert str(path) in message and "system" in message and "run code" in message
    assert "trusted=True" not in message  # no opt-in offered for code execution
    assert not marker.exists()


# --- case 2: a class outside the allowlist ----------------------------------------------------


def test_non_allowlisted_class_is_named_with_the_trusted_opt_in(tmp_path):
    path = tmp_path / "with_args.pth"
    model = trained_tiny()
    torch.save({"state_dict": model.state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_weights(TinyNet(), path)
    message = str(error.value)
    assert str(path) in message and "argparse.Namespace" in message and "trusted=True" in message

    loaded = TinyNet()
    load_weights(loaded, path, trusted=True)  # only on the caller's explicit request
    assert_same_state(loaded, model)


# --- case 3: malformed safetensors ------------------------------------------------------------


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def test_safetensors_header_past_end_of_file(tmp_path):
    path = tmp_path / "short.safetensors"
    path.write_bytes(struct.pack("<Q", 1000) + b'{"a": 1}')
    with pytest.raises(CorruptCheckpointError, match="past the end"):
        load_weights(TinyNet(), path)


def test_safetensors_overlapping_offsets(tmp_path):
    path = tmp_path / "overlap.safetensors"
    header = {
        "fc.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "fc.bias": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }
    path.write_bytes(safetensors_bytes(header, bytes(24)))
    with pytest.raises(CorruptCheckpointError, match="overlap") as error:
        load_weights(TinyNet(), path)
    assert str(path) in str(error.value)


def test_safetensors_offsets_outside_the_data(tmp_path):
    path = tmp_path / "outside.safetensors"
    header = {"fc.bias": {"dtype": "F32", "shape": [1 << 30], "data_offsets": [0, 1 << 32]}}
    path.write_bytes(safetensors_bytes(header, bytes(16)))
    with pytest.raises(CorruptCheckpointError, match="outside"):
        load_weights(TinyNet(), path)


@pytest.mark.parametrize("claimed", [2**62, 512 * 2**20])
def test_safetensors_huge_header_is_refused_with_bounded_memory(tmp_path, claimed):
    path = tmp_path / "huge.safetensors"
    with open(path, "wb") as file:  # sparse: claims a 600 MiB file without writing it
        file.write(struct.pack("<Q", claimed) + b"{")
        file.truncate(600 * 2**20)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptCheckpointError, match="header length"):
            load_weights(TinyNet(), path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def test_safetensors_header_that_is_not_json(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{[")
    with pytest.raises(CorruptCheckpointError, match="not valid JSON"):
        read_metadata(path)


# --- case 4: containers, prefixes, class counts, key reports ---------------------------------


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd, "best_prec1": 91.7},
        lambda sd: {"model": sd, "epoch": 3, "optimizer": {"state": {}}},
        lambda sd: {"model_state": sd},
        lambda sd: {"checkpoint": 1, "model": {"state_dict": sd}},
        lambda sd: OrderedDict(("module." + k, v) for k, v in sd.items()),
        lambda sd: {"state_dict": {"_orig_mod.module." + k: v for k, v in sd.items()}},
    ],
    ids=["plain", "state_dict", "model", "model_state", "nested", "module.", "_orig_mod.module."],
)
def test_containers_and_wrapper_prefixes_are_unwrapped(tmp_path, wrap):
    model = trained_tiny()
    path = tmp_path / "wrapped.pth"
    torch.save(wrap(model.state_dict()), path)
    loaded = TinyNet()
    report = load_weights(loaded, path)
    assert report.complete and not report.missing
    assert_same_state(loaded, model)


def test_legacy_pickle_with_module_prefix_and_no_batch_counter(tmp_path):
    # Like akamaster's CIFAR ResNet files: legacy format, 'module.' keys, no num_batches_tracked.
    model = trained_tiny()
    state = {"module." + k: v for k, v in model.state_dict().items() if "num_batches" not in k}
    path = tmp_path / "legacy.th"
    torch.save({"best_prec1": 91.78, "state_dict": state}, path, _use_new_zipfile_serialization=False)
    loaded = TinyNet()
    report = load_weights(loaded, path)
    assert report.missing == [] and len(report.loaded) == len(state)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(loaded.eval()(x), model.eval()(x))


def test_class_count_mismatch_lists_keys_and_suggests_reset_head(tmp_path):
    path = tmp_path / "imagenet_head.pth"
    torch.save(trained_tiny(num_classes=1000).state_dict(), path)
    with pytest.raises(WeightsMismatchError) as error:
        load_weights(TinyNet(num_classes=10), path)
    message = str(error.value)
    assert str(path) in message
    assert "fc.weight" in message and "fc.bias" in message
    assert "1000" in message and "10" in message
    assert "reset_head=True" in message and "--reset-head" in message


def test_reset_head_loads_the_trunk_and_reinitialises_the_classifier(tmp_path):
    source = trained_tiny(num_classes=1000)
    path = tmp_path / "imagenet_head.pth"
    torch.save(source.state_dict(), path)
    model = TinyNet(num_classes=10)
    fresh_head = model.fc.weight.detach().clone()
    report = load_weights(model, path, reset_head=True)
    assert sorted(report.reset) == ["fc.bias", "fc.weight"]
    assert "fc" in str(report) and "freshly initialised" in str(report)
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert torch.equal(model.bn1.running_var, source.bn1.running_var)
    assert torch.equal(model.fc.weight, fresh_head)  # the model's own initialisation


def test_reset_head_with_a_backbone_only_file(tmp_path):
    source = trained_tiny()
    path = tmp_path / "backbone.pth"
    torch.save({k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}, path)
    with pytest.raises(WeightsMismatchError, match="missing from the file.*fc.weight"):
        load_weights(TinyNet(), path)
    report = load_weights(TinyNet(), path, reset_head=True)
    assert sorted(report.reset) == ["fc.bias", "fc.weight"] and report.missing == []


def test_reset_head_keeps_a_classifier_of_the_same_shape(tmp_path):
    source = trained_tiny()
    path = tmp_path / "same.safetensors"
    save_weights(source, path)
    model = TinyNet()
    report = load_weights(model, path, reset_head=True)
    assert report.reset == [] and report.complete
    assert_same_state(model, source)


def test_reset_head_needs_a_named_classifier(tmp_path):
    path = tmp_path / "plain.pth"
    seq = nn.Sequential(nn.Linear(2, 3))
    torch.save(seq.state_dict(), path)
    with pytest.raises(WeightsError, match="classifier_name"):
        load_weights(nn.Sequential(nn.Linear(2, 3)), path, reset_head=True)


def test_missing_unexpected_and_misshaped_keys_are_reported_by_name(tmp_path):
    state = trained_tiny().state_dict()
    del state["bn1.bias"]
    state["extra.weight"] = torch.zeros(3)
    state["conv1.weight"] = torch.zeros(8, 3, 5, 5)
    path = tmp_path / "partial.pth"
    torch.save(state, path)

    with pytest.raises(WeightsMismatchError) as error:
        load_weights(TinyNet(), path)
    message = str(error.value)
    for key in ("bn1.bias", "extra.weight", "conv1.weight", "(8, 3, 5, 5)", "strict=False"):
        assert key in message

    model = TinyNet()
    report = load_weights(model, path, strict=False)
    assert report.missing == ["bn1.bias"]
    assert report.unexpected == ["extra.weight"]
    assert report.mismatched == [("conv1.weight", (8, 3, 5, 5), (8, 3, 3, 3))]
    assert "fc.weight" in report.loaded and "conv1.weight" not in report.loaded
    assert torch.equal(model.fc.weight, state["fc.weight"])
    assert not report.complete and "bn1.bias" in str(report)


def test_file_without_tensors_says_what_it_found(tmp_path):
    path = tmp_path / "notes.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(WeightsError, match="no tensors found.*epoch"):
        load_weights(TinyNet(), path)


# --- case 5: truncated and damaged files -----------------------------------------------------


@pytest.mark.parametrize("kind", ["zip.pth", "legacy.th", "model.safetensors"])
def test_checkpoint_truncated_to_half_is_reported_corrupt(tmp_path, kind):
    path = tmp_path / kind
    model = trained_tiny(num_classes=100)
    if kind.endswith(".safetensors"):
        save_weights(model, path)
    else:
        torch.save(model.state_dict(), path, _use_new_zipfile_serialization=kind.startswith("zip"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match=f"corrupt checkpoint {path}"):
        load_weights(TinyNet(num_classes=100), path)


@pytest.mark.parametrize("cut", [0, 3, 40, 200])
def test_legacy_checkpoint_cut_anywhere_is_corrupt_not_unsafe(tmp_path, cut):
    path = tmp_path / "cut.th"
    torch.save({"state_dict": trained_tiny().state_dict()}, path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(CorruptCheckpointError, match="corrupt checkpoint"):
        load_weights(TinyNet(), path)


def test_missing_file_and_directory_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such.pth"):
        load_weights(TinyNet(), tmp_path / "no-such.pth")
    save_weights(TinyNet(), tmp_path / "inside.safetensors")
    with pytest.raises(WeightsError, match="is a directory.*inside.safetensors"):
        load_weights(TinyNet(), tmp_path)


def test_unknown_format_is_refused(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_text("these are not weights")
    with pytest.raises(WeightsError, match="unknown weights format"):
        load_weights(TinyNet(), path)


# --- case 6: atomic save under SIGKILL ---------------------------------------------------------


KILLED_SAVE = textwrap.dedent(
    """
    import os, sys, time, torch
    from torch import nn
    from cnnkit.models import weights

    def stall(*args):  # the data is written and fsynced; the rename has not happened yet
        print("written", flush=True)
        time.sleep(60)

    weights.os.replace = stall
    torch.manual_seed(1)
    weights.save_weights(nn.Linear(64, 64), sys.argv[1], metadata={"version": "new"})
    """
)


def test_sigkill_between_write_and_rename_leaves_the_old_file(tmp_path):
    path = tmp_path / "checkpoint.safetensors"
    torch.manual_seed(0)
    old = nn.Linear(64, 64)
    save_weights(old, path, metadata={"version": "old"})
    before = path.read_bytes()

    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVE, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "written"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    assert path.read_bytes() == before
    assert read_metadata(path)["version"] == "old"
    restored = nn.Linear(64, 64)
    load_weights(restored, path)
    assert torch.equal(restored.weight, old.weight)
    leftovers = [p.name for p in tmp_path.iterdir() if p != path]
    assert all(name.endswith(".tmp") for name in leftovers)  # only the unrenamed temporary

    save_weights(nn.Linear(64, 64), path, metadata={"version": "after"})  # still writable
    assert read_metadata(path)["version"] == "after"


KILLED_LOOP = textwrap.dedent(
    """
    import sys, torch
    from torch import nn
    from cnnkit.models.weights import save_weights
    model = nn.Linear(512, 512)
    print("started", flush=True)
    step = 0
    while True:
        step += 1
        save_weights(model, sys.argv[1], metadata={"step": step})
    """
)


def test_sigkill_at_an_arbitrary_moment_never_leaves_a_partial_file(tmp_path):
    path = tmp_path / "loop.safetensors"
    save_weights(nn.Linear(512, 512), path, metadata={"step": 0})
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_LOOP, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "started"
        for delay in (0.05, 0.13, 0.21):
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                pass
            load_weights(nn.Linear(512, 512), path)  # complete at every moment
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert read_metadata(path)["step"] >= 1  # the loop did replace the file
    load_weights(nn.Linear(512, 512), path)


# --- saving and metadata ----------------------------------------------------------------------


def test_save_and_load_round_trip_with_metadata(tmp_path):
    model = trained_tiny(num_classes=3)
    path = tmp_path / "tiny.safetensors"
    returned = save_weights(
        model,
        path,
        metadata={
            "class_names": ["cat", "dog", "bird"],
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
    )
    assert returned == path
    metadata = read_metadata(path)
    assert metadata["architecture"] == "TinyNet"
    assert metadata["num_classes"] == 3
    assert metadata["class_names"] == ["cat", "dog", "bird"]
    assert metadata["mean"] == [0.485, 0.456, 0.406] and metadata["std"][2] == 0.225
    import cnnkit

    assert metadata["cnnkit_version"] == cnnkit.__version__

    loaded = TinyNet(num_classes=3)
    report = load_weights(loaded, path)
    assert report.complete and report.metadata["class_names"][1] == "dog"
    assert_same_state(loaded, model)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.safetensors"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would create it


def test_save_copies_shared_and_channels_last_tensors(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1))
    model[1].weight = nn.Parameter(torch.randn(4, 4, 1, 1))
    model = model.to(memory_format=torch.channels_last)
    model.tied = model[0]  # the same parameters under two names
    path = tmp_path / "shared.safetensors"
    save_weights(model, path)
    loaded = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1))
    loaded.tied = loaded[0]
    load_weights(loaded, path)
    assert_same_state(loaded, model)


def test_read_metadata_of_foreign_safetensors_keeps_strings(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "pt"})
    assert read_metadata(path) == {"format": "pt"}
    torch.save({"w": torch.zeros(2)}, tmp_path / "w.pth")
    with pytest.raises(WeightsError, match="not a safetensors file"):
        read_metadata(tmp_path / "w.pth")


def test_save_refuses_other_suffixes_and_unserialisable_metadata(tmp_path):
    with pytest.raises(WeightsError, match=r"\*\.safetensors"):
        save_weights(TinyNet(), tmp_path / "model.pth")
    with pytest.raises(WeightsError, match="metadata 'mean'"):
        save_weights(TinyNet(), tmp_path / "m.safetensors", metadata={"mean": torch.zeros(3)})
    assert list(tmp_path.iterdir()) == []
