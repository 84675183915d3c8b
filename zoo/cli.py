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
    from zoo.tables import check_format, render

    check_format(format)
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


@app.command("summary")
def summary_command(
    name: Annotated[str, typer.Argument(help="A registered model, e.g. resnet18 ('zoo list' shows them).")],
    input_size: Annotated[tuple[int, int, int] | None, typer.Option(
        "--input-size", metavar="C H W", help="Input channels, height, width. [default: the model's]")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Classes. [default: the paper's]")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per step, for the training memory estimate.")] = 1,
    depth: Annotated[int, typer.Option(help="Nesting depth of the rows; deeper blocks fold into their parent.")] = 2,
    aux: Annotated[bool, typer.Option(help="Build and list the auxiliary heads (GoogLeNet), marked training only.")] = False,
    format: FormatOption = "table",
) -> None:
    """Per-layer shapes, parameters and MACs, with totals and memory estimates."""
    from zoo.summary import render_summary, summarize
    from zoo.tables import check_format

    check_format(format)  # before the forward pass, not after it
    typer.echo(render_summary(summarize(name, input_size, num_classes, batch_size, depth, aux), format))


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
