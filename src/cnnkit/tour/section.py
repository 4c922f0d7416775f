"""What one stage of the tour leaves for the page: text, figures, tables, numbers and commands.

A stage receives a :class:`Section` and a :class:`TourContext` and fills the section as it goes,
so that whatever it produced before an error still reaches the page::

    def run(section: Section, context: TourContext) -> None:
        section.say("A convolution slides a kernel over the image …")
        save_png(..., section.figure("sobel", "The camera photo through the Sobel kernels"))
        section.table("Output sizes", ["stride", "padding", "output"], rows)
        section.metrics["equivariance_error"] = 1e-7
        section.command("cnnkit convolve --kernel sobel_x")
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Figure:
    path: Path  # the PNG, inside the tour folder
    caption: str


@dataclass
class Table:
    caption: str
    headers: list[str]
    rows: list[list]


@dataclass
class Section:
    """One stage's part of the page, shown in the order the stage added its paragraphs, figures
    and tables. ``figures_dir`` is where its PNGs go (``N-name.png``)."""

    number: int
    title: str
    figures_dir: Path
    paragraphs: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    order: list[tuple[str, int]] = field(default_factory=list)  # ("paragraph" | "figure" | "table", index), as added
    seconds: float = 0.0
    error: str | None = None  # one line: what went wrong
    details: str | None = None  # the traceback behind it

    def say(self, text: str) -> None:
        """Add a paragraph; ``backquoted`` words are shown as code."""
        self.order.append(("paragraph", len(self.paragraphs)))
        self.paragraphs.append(text)

    def figure(self, name: str, caption: str) -> Path:
        """The path a stage writes its figure ``name`` to (a PNG), recorded with ``caption``."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            raise ValueError(f"figure name {name!r} must be lower-case letters, digits and dashes")
        path = self.figures_dir / f"{self.number}-{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.order.append(("figure", len(self.figures)))
        self.figures.append(Figure(path, caption))
        return path

    def table(self, caption: str, headers: list[str], rows: list[list]) -> None:
        """Add a table; numbers are shown as given (format them first)."""
        self.order.append(("table", len(self.tables)))
        self.tables.append(Table(caption, list(headers), [list(row) for row in rows]))

    def command(self, line: str) -> None:
        """Add a shell command that reproduces part of the stage on its own."""
        self.commands.append(line)

    @property
    def status(self) -> str:
        return "failed" if self.error else "done"

    def to_dict(self, root: Path) -> dict:
        return {
            "number": self.number,
            "title": self.title,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "error": self.error,
            "metrics": self.metrics,
            "figures": [{"path": str(f.path.relative_to(root)), "caption": f.caption} for f in self.figures],
            "tables": [{"caption": t.caption, "headers": t.headers, "rows": t.rows} for t in self.tables],
            "commands": self.commands,
        }


@dataclass
class TourContext:
    """What every stage may use: where to write, how big to go, and results earlier stages share.

    out_dir: the tour folder (``index.html``, ``figures/``, ``runs/`` for trained models).
    quick: small sizes and few steps, so the whole tour takes under two minutes on 2 cores.
    seed: every random choice follows it.
    vgg19_weights: a torchvision ``vgg19-*.pth`` for stage 8 (None: random features, said so).
    shared: results one stage leaves for another (stage 2's trained network for stage 4);
        a stage that needs one it does not find makes it itself, so any subset of stages runs.
    """

    out_dir: Path
    quick: bool = False
    seed: int = 0
    vgg19_weights: str | None = None
    shared: dict = field(default_factory=dict)

    @property
    def runs_dir(self) -> Path:
        return self.out_dir / "runs"
