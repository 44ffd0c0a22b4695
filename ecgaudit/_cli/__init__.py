"""The `ecgaudit` command line: parse, call the library, render, map to an exit code.

Exit codes: 0 success (every gate rule passed), 1 a gate rule failed, 2 bad usage or bad input,
3 an internal failure (a bug), 4 inconclusive (an attack-failure indicator fired; never a pass).
Only this package prints or exits.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from ecgaudit import __version__
from ecgaudit._cli._tempdir import owned_tempdir
from ecgaudit.errors import EcgauditError, ExitCode

err_console = Console(stderr=True)

EXIT_CODES_HELP = (
    "Exit codes: 0 ran and every gate rule passed; 1 ran and a gate rule failed; "
    "2 bad usage or bad input (arguments, model, card, data, profile, key); 3 internal failure (a bug); "
    "4 inconclusive: every rule passed but an attack-failure indicator fired, so ecgaudit could not measure "
    "robustness reliably (never a pass)."
)

app = typer.Typer(
    name="ecgaudit",
    help="Audit 12-lead ECG classifiers for adversarial robustness.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state = {"debug": False}


class Terminated(BaseException):
    """SIGTERM (what torchrun, schedulers and `kill` send), raised in the main thread so that everything unwinds as
    for Ctrl-C: the output lock and unfinished folders are removed, and the earlier report stays."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _version(value: bool) -> None:
    if value:
        print(f"ecgaudit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _state["debug"] = debug


def _register() -> None:
    from ecgaudit._cli import attack as attack_cmd
    from ecgaudit._cli import inspect as inspect_cmd

    app.command("inspect", help=inspect_cmd.HELP)(inspect_cmd.inspect)
    app.command("attack", help=attack_cmd.HELP)(attack_cmd.attack)
    from ecgaudit._cli import profiles as profiles_cmd
    from ecgaudit._cli import scan as scan_cmd

    app.command("scan", help=scan_cmd.HELP)(scan_cmd.scan)
    app.add_typer(profiles_cmd.app, name="profiles")
    from ecgaudit._cli import evidence

    app.command("keygen")(evidence.keygen_command)
    app.command("verify")(evidence.verify_command)
    app.command("render")(evidence.render_command)
    app.add_typer(evidence.schema_app, name="schema")
    from ecgaudit._cli import reader_study as reader_study_cmd

    app.add_typer(reader_study_cmd.app, name="reader-study")


_register()


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI and exit with a documented code; nothing uncaught leaves as 1."""
    args = sys.argv[1:] if argv is None else argv
    if "--debug" in args:  # accepted after the command too (`ecgaudit scan ... --debug`), as the bug message says
        args = ["--debug", *(a for a in args if a != "--debug")]
    _state["debug"] = "--debug" in args
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    with owned_tempdir():  # what torch and onnxruntime leave in $TMPDIR goes with the run
        code = _run(args)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
    # Only a run that loaded a model can have abandoned a hung model call (and only then is the module imported).
    models = sys.modules.get("ecgaudit.models.interface")
    if models is not None and any(thread.is_alive() for thread in models.ABANDONED_THREADS):
        # A hung model call cannot be stopped; normal interpreter shutdown would wait on it or abort.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))
    sys.exit(int(code))


def _run(args: list[str]) -> int:
    """The command's exit code; every exception ends here as its documented code."""
    try:
        result = app(args=args, prog_name="ecgaudit", standalone_mode=False)
        code = int(result) if isinstance(result, int) else ExitCode.OK
        if code == 130:  # typer turns Ctrl-C into Exit(130) itself
            err_console.print("[bold red]interrupted[/]: nothing complete was written.")
    except EcgauditError as exc:
        if _state["debug"]:
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.TyperException as exc:  # usage errors: bad option, missing argument, bad value
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err_console.print(f"[bold red]error:[/] {exc.format_message()}", highlight=False)
        code = ExitCode.BAD_INPUT
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("[bold red]interrupted[/]: nothing complete was written.")
        code = 130
    except Terminated:
        err_console.print("[bold red]terminated[/] (SIGTERM): nothing complete was written.")
        code = 128 + signal.SIGTERM
    except Exception:  # the one place that maps unexpected failures to exit 3
        if _state["debug"]:
            err_console.print_exception()
        exc_type, exc_value, _ = sys.exc_info()
        err_console.print(
            f"[bold red]internal error[/] ({exc_type.__name__ if exc_type else 'unknown'}: {exc_value}); "
            "this is a bug in ecgaudit: rerun with --debug (e.g. `ecgaudit --debug scan ...`) and report the "
            "traceback.",
            highlight=False,
            soft_wrap=True,
        )
        code = ExitCode.INTERNAL
    return int(code)
