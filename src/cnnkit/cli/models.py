"""Commands on networks: models, summary."""


def add_commands(subparsers) -> None:
    pass
