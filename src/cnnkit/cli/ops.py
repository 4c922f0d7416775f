"""Commands on the operations: convolve, pool, shape."""


def add_commands(subparsers) -> None:
    pass
