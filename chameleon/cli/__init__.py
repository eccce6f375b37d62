"""The ``chameleon`` command line: the only place that prints."""

from chameleon.cli.app import app, main

__all__ = ["app", "main"]
