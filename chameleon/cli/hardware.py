"""``chameleon blueprints``: the hardware blueprint table (Glimpse)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, help="Hardware blueprints: datasheet numbers and their embedding.")
console = Console()


@app.callback(invoke_without_command=True)
def list_blueprints(ctx: typer.Context) -> None:
    """List the known devices (``show NAME`` for one)."""
    if ctx.invoked_subcommand is not None:
        return
    from chameleon.hardware.blueprints import blueprint_names, get_blueprint

    table = Table(title="blueprints")
    for col in ("name", "kind", "description", "source"):
        table.add_column(col)
    for name in blueprint_names():
        bp = get_blueprint(name)
        table.add_row(bp.name, bp.kind, bp.description, bp.source)
    console.print(table)


@app.command()
def show(name: str = typer.Argument(..., help="Device name, or 'host'.")) -> None:
    """One device's fields and its embedding."""
    from chameleon.hardware.blueprints import EMBEDDING_FEATURES, describe, embedding, get_blueprint

    bp = get_blueprint(name)
    table = Table(title=f"{bp.name} ({bp.kind}): {bp.description}")
    table.add_column("field")
    table.add_column("value", justify="right")
    for field, value in describe(bp):
        table.add_row(field, value)
    console.print(table)
    emb = Table(title="embedding")
    emb.add_column("feature")
    emb.add_column("value", justify="right")
    for feature, value in zip(EMBEDDING_FEATURES, embedding(bp), strict=True):
        emb.add_row(feature, f"{value:.3f}")
    console.print(emb)
    console.print(f"source: {bp.source}")
