"""The ``cnnkit`` command: one thin module per command group."""
