"""`ecgaudit profiles list` and `ecgaudit profiles show NAME`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ecgaudit.profiles import builtin_names, load_profile

app = typer.Typer(help="List and show scan profiles.", no_args_is_help=True)


@app.command("list")
def list_profiles() -> None:
    """List the built-in profiles."""
    table = Table(title="Built-in profiles", title_justify="left")
    for column in ("name", "version", "attacks", "description"):
        table.add_column(column)
    for name in builtin_names():
        profile = load_profile(name)
        table.add_row(name, profile.data["profile"]["version"], ", ".join(a["id"] for a in profile.attacks),
                      profile.data["profile"]["description"])
    Console().print(table)


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="A built-in profile name or a .toml path.")]) -> None:
    """Print a profile's TOML exactly as it is used, with its SHA-256."""
    profile = load_profile(name)
    print(f"# {profile.source}  sha256 {profile.sha256}")
    print(profile.text.decode("utf-8"), end="")
