"""``python -m parley_operator``: the same as the ``parley-operator`` console script."""

from parley_operator.cli import main

main()
