"""The `zoo` command. Each command parses its options, calls one library function and prints.

Torch is imported inside the commands, so `zoo --help` does not pay for it.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)

FormatOption = Annotated[str, typer.Option("--format", "-f", help="table, markdown, csv or json.")]


@app.callback()
def _root() -> None:
    """A model zoo of the classic convolutional networks: list, summarize, train, evaluate, fine-tune."""


@app.command("list")
def list_command(
    filter: Annotated[str, typer.Option("--filter", help="fnmatch pattern, e.g. 'resnet*'.")] = "*",
    format: FormatOption = "table",
) -> None:
    """List the registered models: family, year, parameters and default input size."""
    from zoo.catalog import catalog
    from zoo.errors import ZooError
    from zoo.tables import FORMATS, render

    if format not in FORMATS:
        raise ZooError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    rows = catalog(filter)
    if not rows:
        raise ZooError(f"no model matches {filter!r}; run 'zoo list' to see them all")
    headers = ["name", "family", "year", "params", "input", "paper count", "torchvision weights"]
    if format == "json":
        table = [[r.name, r.family, r.year, r.params, r.input_size, r.reference_ok, r.torchvision] for r in rows]
    else:
        table = [[r.name, r.family, str(r.year), r.params, r.input_size,
                  {True: "matches", False: "MISMATCH", None: "-"}[r.reference_ok], r.torchvision or "-"] for r in rows]
    typer.echo(render(headers, table, format, numeric=[False, False, False, True, False, False, False]))


def main() -> None:
    """Entry point: known errors become one line on stderr and exit code 2; anything else is a bug.

    Typer (in standalone mode) already answers usage errors with exit code 2, and lets exceptions
    from the commands through to here.
    """
    from zoo.errors import ZooError

    try:
        app()
    except ZooError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
