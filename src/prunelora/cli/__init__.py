"""The `prunelora` command line: `main` (the console script and `python -m prunelora`).

`prunelora.cli.app` holds the command table and the parse flow, `prunelora.cli.options` the
option builders the commands share, and one module per command (`train`, `unlearn`, `eval`, ...)
its options and its run function. Importing this package imports no command.
"""

from prunelora.cli.app import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
