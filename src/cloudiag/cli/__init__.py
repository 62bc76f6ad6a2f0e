"""The `cloudiag` command line: one command, one module per subcommand."""

from cloudiag.cli.main import main

__all__ = ["main"]
