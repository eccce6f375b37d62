"""``python -m chameleon``: the same as the ``chameleon`` command."""

from chameleon.cli import main

main()
