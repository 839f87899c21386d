"""What every command shares: the group that turns errors into exit codes, and the common options.

Exit codes: 0 ok · 1 some shots failed (or the reader of standard output went away) · 2 bad
input or a refused run (a message, never a traceback) · 3 shotflow itself broke (a bug: please
report it) · 130 Ctrl-C.
``ShotflowGroup.invoke`` is the one place that maps what a command raised to one of
them; commands are plain functions that raise.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import click

EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


class ShotflowCommand(click.Command):
    """A command that runs under what ``--allow-path`` and ``--allow-private-urls`` allowed
    (they are parsed with the command's own arguments, so only known here)."""

    def invoke(self, ctx: click.Context):
        damage = _DamageLines()
        with _trust(), warnings.catch_warnings():
            warnings.showwarning = damage.show
            try:
                return super().invoke(ctx)
            finally:
                damage.close()


class ShotflowGroup(click.Group):
    """A click group whose commands' errors become one message and an exit code, never a
    traceback: the one place that maps exceptions to exit codes. Its commands are
    ``ShotflowCommand``s and its subgroups ``ShotflowGroup``s."""

    command_class = ShotflowCommand
    group_class = type  # a subgroup (``review``) is a ShotflowGroup too

    def invoke(self, ctx: click.Context):
        from .errors import ShotflowError

        try:
            return super().invoke(ctx)
        except ShotflowError as exc:
            echo_error(exc)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: finished work is kept; run the same command again to continue", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # the reader of standard output went away (`shotflow plan | true`): not a bug
            import sys

            from .report import silence

            silence(sys.stdout)
            ctx.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # the last line of defence: report a bug, not a traceback
            if os.environ.get("SHOTFLOW_DEBUG"):
                raise
            from .errors import file_system_error

            machine = file_system_error(exc)  # a full disk, a read-only folder: the machine's, not a bug
            if machine is not None:
                echo_error(machine)
                ctx.exit(machine.exit_code)
            click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
            click.echo(
                "this is a bug in shotflow; set SHOTFLOW_DEBUG=1 to see the traceback and please report it", err=True
            )
            ctx.exit(EXIT_INTERNAL)


class _DamageLines:
    """A ``ShotflowWarning`` as one ``warning:`` line on stderr; of damaged state files
    (``statefile.DamagedState``) the first ``SHOWN`` of a command, the rest counted in one line
    at its end, so that a cache with thousands of damaged files (a crafted one, a disk that
    failed) says so in a screenful. Any other warning is shown as Python shows it."""

    SHOWN = 5

    def __init__(self) -> None:
        self.count = 0

    def show(self, message, category, filename, lineno, file=None, line=None) -> None:
        from .errors import ShotflowWarning
        from .statefile import DamagedState

        if not issubclass(category, ShotflowWarning):
            _python_show_warning(message, category, filename, lineno, file, line)
            return
        if not issubclass(category, DamagedState):
            click.echo(f"warning: {message}", err=True)
            return
        self.count += 1
        if self.count <= self.SHOWN:
            click.echo(f"warning: {message}", err=True)

    def close(self) -> None:
        more = self.count - self.SHOWN
        if more > 0:
            click.echo(f"warning: {more} more damaged state file(s) were ignored as well", err=True)


_python_show_warning = warnings.showwarning


def echo_error(error) -> None:
    """A ShotflowError as the user reads it: one ``error:`` line per problem, on stderr."""
    for line in error.lines():
        click.echo(f"error: {line}", err=True)


def overrides(pairs: tuple[str, ...]):
    if not pairs:
        return None
    from .load import parse_overrides

    return parse_overrides(pairs)


def _trust():
    """What ``--allow-path`` and ``--allow-private-urls`` loosened, for the command's run."""
    import contextlib

    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    paths, private = meta.get("shotflow.allow_paths", []), meta.get("shotflow.allow_private_urls", False)
    if not paths and not private:
        return contextlib.nullcontext()
    from .trust import use

    return use(paths, private)


def _remember_paths(ctx, param, value):
    for folder in value or ():
        if not os.path.isdir(folder):
            raise click.BadParameter(f"{folder} is not a folder", ctx=ctx, param=param)
        ctx.meta.setdefault("shotflow.allow_paths", []).append(folder)


def _remember_private(ctx, param, value):
    if value:
        ctx.meta["shotflow.allow_private_urls"] = True


allow_path_opt = click.option(
    "--allow-path",
    multiple=True,
    metavar="DIR",
    expose_value=False,
    callback=_remember_paths,
    help="Let the storyboard read reference files and includes in DIR, outside its project (repeatable).",
)
allow_private_opt = click.option(
    "--allow-private-urls",
    is_flag=True,
    expose_value=False,
    callback=_remember_private,
    help="Let reference URLs reach loopback and private networks (a local server, the emulator).",
)


def trust_opts(fn):
    """--allow-path and --allow-private-urls: accepted before the command and after it."""
    return allow_path_opt(allow_private_opt(fn))


DEFAULT_STORYBOARD = "storyboard.yaml"


def default_storyboard(ctx: click.Context, given: Path | None = None) -> Path:
    """The FILE a command was given, else ``storyboard.yaml`` in the current folder."""
    if given is not None:
        return given
    path = Path(DEFAULT_STORYBOARD)
    if not path.is_file():
        click.echo(
            f"error: no storyboard given, and there is no {DEFAULT_STORYBOARD} in this folder "
            f"(name the file: shotflow {ctx.info_name} FILE; or start a project: shotflow init)",
            err=True,
        )
        ctx.exit(2)
    return path


def storyboard_arg(fn):
    """[FILE] (default: storyboard.yaml here), with the trust options every command that reads
    a storyboard takes."""
    argument = click.argument(
        "storyboard",
        required=False,
        metavar="[FILE]",
        type=click.Path(dir_okay=False, path_type=Path),
        callback=lambda ctx, param, value: default_storyboard(ctx, value),
    )
    return trust_opts(argument(fn))


def set_opt(fn):
    """``--set KEY=VALUE`` (a var the storyboard defines) and ``--set-new KEY=VALUE`` (a new
    one, also written ``--set +KEY=VALUE``), passed on as one tuple ``sets``."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, sets=(), sets_new=(), **kwargs):
        return fn(*args, sets=tuple(sets) + tuple(f"+{pair}" for pair in sets_new), **kwargs)

    wrapper = click.option(
        "--set-new",
        "sets_new",
        multiple=True,
        metavar="KEY=VALUE",
        help="Add a template var the storyboard does not define (repeatable).",
    )(wrapper)
    return click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a template var of the storyboard's vars: (repeatable; a.b=v sets a key of a mapping).",
    )(wrapper)


backend_opt = click.option(
    "--backend",
    type=click.Choice(["preview", "runware"]),
    default=None,
    help="Where images are generated (default: the storyboard's backend:, else preview).",
)
cache_opt = click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache folder (default: .shotflow/ beside the storyboard, or $SHOTFLOW_CACHE).",
)


def output_opt(*names: str, help: str):
    """An option naming a file to write (``-o/--output``, ``--csv``, …): a path, never a folder;
    what may be written there is checked by ``shotflow.outputs`` before any work."""
    return click.option(
        *names, type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PATH", help=help
    )


json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output (see README).")
remote_opt = click.option(
    "--remote",
    "remote",
    default=None,
    metavar="URL",
    help="Team cache: s3://bucket/prefix, gs://…, az://…, file:///folder, or 'off' "
    "(default: $SHOTFLOW_REMOTE, remote in your shotflow config, the storyboard's remote:).",
)


def remote_of(value: str | None) -> str | None:
    """This command's --remote, else the one given before the command (``shotflow --remote URL …``)."""
    if value is not None:
        return value
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().params.get("remote") if ctx is not None else None


def warn(text: str) -> None:
    click.echo(text, err=True)
