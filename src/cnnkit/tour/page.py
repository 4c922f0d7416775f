"""The tour's report: one self-contained HTML page (figures embedded as data URIs, no network
needed to view it) and the same content as ``tour.json`` for scripts."""

from __future__ import annotations

import base64
import datetime
import html
import json
import platform
import re
from pathlib import Path

import torch

from cnnkit import __version__
from cnnkit.files import atomic_write
from cnnkit.tour.section import Figure, Section, Table, TourContext

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-top: 0; }
nav ul { columns: 2; list-style: none; padding-left: 0; } nav .failed a, .error { color: #b00020; }
section { border-top: 1px solid #ddd; margin-top: 2rem; padding-top: 0.5rem; }
figure { display: inline-block; vertical-align: top; margin: 0.5rem 1rem 1rem 0; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9rem; color: #444; max-width: 40rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.6rem; text-align: left; }
td.number { text-align: right; white-space: nowrap; }
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; }
.error { border-left: 4px solid #b00020; padding-left: 0.8rem; }
.time { color: #666; font-weight: normal; font-size: 1rem; }
"""


def write_page(sections: list[Section], context: TourContext, seconds: float) -> Path:
    """Write ``index.html`` and ``tour.json`` in ``context.out_dir``; return the page's path."""
    root = context.out_dir
    record = {
        "cnnkit": __version__,
        "torch": torch.__version__,
        "quick": context.quick,
        "seed": context.seed,
        "seconds": round(seconds, 2),
        "stages": [section.to_dict(root) for section in sections],
    }
    with atomic_write(root / "tour.json") as path:
        path.write_text(json.dumps(record, indent=2) + "\n")
    page = root / "index.html"
    with atomic_write(page) as path:
        path.write_text(_html(sections, context, seconds), encoding="utf-8")
    return page


def _html(sections: list[Section], context: TourContext, seconds: float) -> str:
    from cnnkit.train.report import cpu_name

    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    mode = "quick tour" if context.quick else "full tour"
    contents = "".join(
        f'<li class="{s.status}"><a href="#stage-{s.number}">{s.number}. {html.escape(s.title)}</a>'
        f' ({s.status}, {s.seconds:.0f} s)</li>' for s in sections
    )
    body = "\n".join(_section_html(section) for section in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cnnkit tour</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body>
<h1>The cnnkit tour</h1>
<p class="meta">{mode}, {when}: {seconds:.0f} s on {html.escape(cpu_name())} ({torch.get_num_threads()} threads),
cnnkit {__version__}, PyTorch {torch.__version__}, Python {platform.python_version()}.
Everything below was computed on built-in data by <code>cnnkit tour{' --quick' if context.quick else ''}</code>.</p>
<nav><ul>{contents}</ul></nav>
{body}
</body></html>
"""


def _section_html(section: Section) -> str:
    parts = [f'<section id="stage-{section.number}">',
             f'<h2>{section.number}. {html.escape(section.title)} <span class="time">{section.seconds:.1f} s</span></h2>']
    for kind, index in section.order:
        if kind == "paragraph":
            parts.append(f"<p>{_inline(section.paragraphs[index])}</p>")
        elif kind == "table":
            parts.append(_table_html(section.tables[index]))
        elif section.figures[index].path.is_file():  # a figure the stage announced but did not write is left out
            parts.append(_figure_html(section.figures[index]))
    if section.error:
        parts.append(f'<div class="error"><p><strong>This stage failed:</strong> {html.escape(section.error)}</p>'
                     f"<details><summary>traceback</summary><pre>{html.escape(section.details or '')}</pre></details></div>")
    parts.append(f"<p>Reproduce the stage with <code>cnnkit tour --stages {section.number}</code>"
                 + ("; its parts with these commands, run inside the tour folder (they use its <code>runs/</code>):</p><pre>"
                    + html.escape("\n".join(section.commands)) + "</pre>" if section.commands else ".</p>"))
    parts.append("</section>")
    return "\n".join(parts)


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in table.headers)
    rows = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in table.rows)
    return f"<table><caption>{html.escape(table.caption)}</caption><tr>{head}</tr>{rows}</table>"


def _figure_html(figure: Figure) -> str:
    data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(figure.caption)}">'
            f"<figcaption>{_inline(figure.caption)}</figcaption></figure>")


def _cell(value) -> str:
    """A table cell; numbers (and figures such as "61.1 M" or "97 %") are right-aligned."""
    text = str(value)
    number = re.fullmatch(r"[-+]?[\d.,]+(e[-+]?\d+)?( ?[%×a-zA-Z]{1,3})?", text) is not None
    return f'<td class="number">{html.escape(text)}</td>' if number else f"<td>{html.escape(text)}</td>"


def _inline(text: str) -> str:
    """Escape ``text`` and show `backquoted` words as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))
