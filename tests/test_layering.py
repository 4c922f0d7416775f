"""The layering of ../shared/ARCHITECTURE.md, checked: task packages do not import each other,
and inference does not load training code."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "src" / "cnnkit"
TASK_PACKAGES = ("detection", "segmentation", "transfer", "style", "explain")
INFERENCE_MODULES = ("cnnkit.inference", "cnnkit.train.predict", "cnnkit.detection.predict",
                     "cnnkit.detection.instance_predict", "cnnkit.segmentation.predict",
                     "cnnkit.segmentation.segmenter")
TRAINING_MODULES = ("cnnkit.train.engine", "cnnkit.train.task", "cnnkit.detection.task",
                    "cnnkit.detection.mask_task", "cnnkit.segmentation.task", "cnnkit.transfer")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("package", TASK_PACKAGES)
def test_no_task_package_imports_a_sibling(package):
    siblings = [f"cnnkit.{other}" for other in TASK_PACKAGES if other != package]
    offending = {f"{path.relative_to(SOURCE)}: {module}"
                 for path in (SOURCE / package).rglob("*.py") for module in imported_modules(path)
                 if any(module == s or module.startswith(s + ".") for s in siblings)}
    assert not offending


def test_inference_modules_load_no_training_code():
    code = ("import sys\n" + "".join(f"import {name}\n" for name in INFERENCE_MODULES)
            + "print('\\n'.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                timeout=120).stdout.split())
    assert not {name for name in loaded if name.startswith(TRAINING_MODULES)}
