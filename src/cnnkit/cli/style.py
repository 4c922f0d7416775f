"""Commands: style (being written)."""


def add_commands(subparsers) -> None:
    pass
