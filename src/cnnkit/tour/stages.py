"""The tour's spine: the lecture's eight stages in order, each run on built-in data, its failure
kept to its own section, and the page written at the end (and after every stage, so an
interrupted tour still leaves a page)."""

from __future__ import annotations

import importlib
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnkit.tour.page import write_page
from cnnkit.tour.section import Section, TourContext


@dataclass(frozen=True)
class Stage:
    number: int
    title: str
    module: str  # cnnkit.tour.<module> defines run(section, context)


STAGES = (
    Stage(1, "Convolution", "convolution"),
    Stage(2, "A network, trained", "network"),
    Stage(3, "The architectures", "architectures"),
    Stage(4, "What the network learned", "visualization"),
    Stage(5, "Transfer learning", "transfer"),
    Stage(6, "Detection", "detection"),
    Stage(7, "Segmentation", "segmentation"),
    Stage(8, "Style transfer", "style"),
)


@dataclass
class Tour:
    """The sections as run, the page and how long it all took."""

    sections: list[Section]
    page: Path
    seconds: float

    @property
    def failed(self) -> list[Section]:
        return [section for section in self.sections if section.error]


def parse_stages(text: str) -> list[int]:
    """``"1,2,4"`` or ``"3-5"`` → stage numbers; raises ValueError naming what is not a stage."""
    numbers = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        first, dash, last = part.partition("-")
        try:
            span = range(int(first), int(last if dash else first) + 1)
        except ValueError:
            raise ValueError(f"--stages: {part!r} is not a stage number or range (such as 1,2,4 or 3-5)") from None
        unknown = [n for n in span if not 1 <= n <= len(STAGES)]
        if unknown or not span:
            raise ValueError(f"--stages: there is no stage {unknown[0] if unknown else part}; the stages are 1-{len(STAGES)}")
        numbers.extend(n for n in span if n not in numbers)
    if not numbers:
        raise ValueError("--stages: name at least one stage, such as 1,2,4")
    return sorted(numbers)


def run_tour(
    out_dir: str | os.PathLike = "tour",
    stages: list[int] | None = None,
    quick: bool = False,
    seed: int = 0,
    vgg19_weights: str | None = None,
    progress: bool | None = None,
) -> Tour:
    """Run ``stages`` (default: all eight) and write ``out_dir/index.html`` and ``tour.json``.

    A stage that raises is recorded in its section (the error in one line, the traceback
    behind a fold) and the tour goes on. ``progress`` shows a bar across the stages (default:
    only when stderr is a terminal). Raises ValueError for an empty list or a number that is
    not a stage.
    """
    from tqdm.auto import tqdm

    known = [stage.number for stage in STAGES]
    if stages is not None and (not stages or not set(stages) <= set(known)):
        raise ValueError(f"stages must be some of {known}, got {list(stages)}")
    chosen = [stage for stage in STAGES if stages is None or stage.number in stages]
    context = TourContext(Path(out_dir), quick=quick, seed=seed, vgg19_weights=vgg19_weights)
    if context.out_dir.exists() and not context.out_dir.is_dir():
        raise NotADirectoryError(f"{context.out_dir}: is a file, expected a folder for the tour (-o DIR)")
    context.out_dir.mkdir(parents=True, exist_ok=True)
    if progress is None:
        progress = sys.stderr.isatty()
    start = time.perf_counter()
    sections: list[Section] = []
    bar = tqdm(chosen, desc="tour", unit="stage", disable=not progress)
    for stage in bar:
        bar.set_description(f"tour {stage.number}. {stage.title}")
        section = Section(stage.number, stage.title, context.out_dir / "figures")
        sections.append(section)
        torch.manual_seed(seed)
        began = time.perf_counter()
        try:
            importlib.import_module(f"cnnkit.tour.{stage.module}").run(section, context)
        except Exception as error:  # noqa: BLE001 - a failed stage is reported on its page, not fatal
            section.error = f"{type(error).__name__}: {error}".splitlines()[0]
            section.details = traceback.format_exc()
        section.seconds = time.perf_counter() - began
        page = write_page(sections, context, time.perf_counter() - start)
    bar.close()
    return Tour(sections, page, time.perf_counter() - start)
