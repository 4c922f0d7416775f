"""Commands: segment (being written)."""


def add_commands(subparsers) -> None:
    pass
