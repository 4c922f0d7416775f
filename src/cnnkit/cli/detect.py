"""Commands: detect (being written)."""


def add_commands(subparsers) -> None:
    pass
