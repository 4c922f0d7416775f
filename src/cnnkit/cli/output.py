"""How every command prints its result: lines for people, one JSON object for scripts."""

from __future__ import annotations

import json


def print_result(args, record: dict, lines: list[str]) -> None:
    """Print ``record`` as JSON when ``--format json`` was given, else the readable ``lines``."""
    print(json.dumps(record) if args.format == "json" else "\n".join(lines))
