"""What every command shares: the common options, and errors turned into exit codes.

Exit codes: 0 ok · 1 some shots failed · 2 bad input or a refused run (a message,
never a traceback) · 3 shotflow itself broke (a bug: please report it) · 130 Ctrl-C.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

EXIT_INTERNAL = 3


def _fail(error) -> None:
    for line in error.lines():
        click.echo(f"error: {line}", err=True)
    sys.exit(error.exit_code)


def run_guarded(fn, *args, **kwargs):
    """Call ``fn``; ShotflowErrors become messages and exit codes, never tracebacks."""
    from .errors import ShotflowError

    try:
        return fn(*args, **kwargs)
    except ShotflowError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("interrupted: finished work is kept; run the same command again to continue", err=True)
        sys.exit(130)
    except click.exceptions.Exit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: report a bug, not a traceback
        if os.environ.get("SHOTFLOW_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("this is a bug in shotflow; set SHOTFLOW_DEBUG=1 to see the traceback and please report it",
                   err=True)
        sys.exit(EXIT_INTERNAL)


def overrides(pairs: tuple[str, ...]):
    if not pairs:
        return None
    from .load import parse_overrides

    return parse_overrides(pairs)


storyboard_arg = click.argument("storyboard", type=click.Path(dir_okay=False, path_type=Path))
set_opt = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a template var (repeatable).")
backend_opt = click.option("--backend", type=click.Choice(["preview", "runware"]), default=None,
                           help="Where images are generated (default: the storyboard's backend:, else preview).")
cache_opt = click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                         help="Cache folder (default: .shotflow/ beside the storyboard, or $SHOTFLOW_CACHE).")
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see README).")
remote_opt = click.option("--remote", "remote", default=None, metavar="URL",
                          help="Team cache: s3://bucket/prefix, gs://…, az://…, file:///folder, or 'off' "
                               "(default: $SHOTFLOW_REMOTE, remote in your shotflow config, the storyboard's remote:).")


def remote_of(value: str | None) -> str | None:
    """This command's --remote, else the one given before the command (``shotflow --remote URL …``)."""
    if value is not None:
        return value
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().params.get("remote") if ctx is not None else None


def warn(text: str) -> None:
    click.echo(text, err=True)
