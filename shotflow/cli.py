"""The command line: parse arguments, call the stages. Nothing else.

Each command is a plain function that calls a stage and prints what it returns; what a
command raises becomes a message and an exit code in one place, ``ShotflowGroup`` (see
``_cliopts``): 0 ok · 1 some shots failed · 2 bad input or a refused run · 3 a bug · 130 Ctrl-C.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ._cliopts import (
    ShotflowGroup,
    backend_opt,
    cache_opt,
    default_storyboard,
    echo_error,
    json_opt,
    output_opt,
    remote_of,
    remote_opt,
    set_opt,
    storyboard_arg,
    trust_opts,
    warn,
)
from ._cliopts import overrides as _overrides
from ._version import __version__


@click.group(cls=ShotflowGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="shotflow")
@trust_opts
@remote_opt
def main(remote) -> None:
    """shotflow: render storyboards written in YAML, with every frame cached by content.

    \b
    shotflow init [DIR]                      start a project: a commented storyboard.yaml
    shotflow validate storyboard.yaml        check a storyboard
    shotflow plan storyboard.yaml            what would render, why, and what it costs
    shotflow render storyboard.yaml          render what changed (offline preview by default)
    shotflow board storyboard.yaml           an HTML storyboard of the frames
    shotflow watch storyboard.yaml           a live board: save the file, see the frames change
    shotflow pull storyboard.yaml            the lock's frames from the team cache (--remote URL)
    """
    # `import httpx` also imports httpx's own command-line client (rich, pygments, click: ~60 ms
    # measured here) whenever those are installed, and rich is one of ours. shotflow never runs
    # httpx's CLI: a None entry makes that one optional import fail, as httpx allows for
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


@main.command()
@click.argument("storyboards", nargs=-1, metavar="[FILE]...", type=click.Path(dir_okay=False, path_type=Path))
@trust_opts
@set_opt
@backend_opt
@click.pass_context
def validate(ctx: click.Context, storyboards: tuple[Path, ...], sets, backend) -> None:
    """Check storyboards (default: storyboard.yaml here): schema, templates, references, sizes, the graph."""
    storyboards = storyboards or (default_storyboard(ctx),)

    def check(path: Path):
        from . import graph as graphs
        from .expand import load_project
        from .load import display_path

        project = load_project(path, _overrides(sets), backend)
        graphs.build(project)
        shots = sum(1 for n in project.nodes.values() if n.scene is not None)
        from ._text import counted

        click.echo(
            f"ok: {display_path(project.path)} ({counted(shots, 'shot')}, "
            f"{counted(len(project.nodes) - shots, 'sheet')}, {counted(len(project.scenes), 'scene')})"
        )

    from .errors import ShotflowError

    worst = 0
    for path in storyboards:  # every file is checked, and every error of each reported
        try:
            check(path)
        except ShotflowError as exc:
            echo_error(exc)
            worst = max(worst, exc.exit_code)
    if worst:
        sys.exit(worst)


@main.command()
@storyboard_arg
@set_opt
@backend_opt
@cache_opt
@json_opt
@click.option("--force", multiple=True, metavar="SHOT", help="Plan SHOT as re-rendered (repeatable; globs allowed).")
@click.option("--only", multiple=True, metavar="SHOT", help="Plan only SHOT and its upstream (repeatable).")
@click.option("--include-approved", is_flag=True, help="Plan approved shots that changed as rendering (default: held).")
@remote_opt
def plan(storyboard: Path, sets, backend, cache_dir, as_json, force, only, include_approved, remote) -> None:
    """Show what a render would do: fresh and rendering nodes, why, cost, critical path."""

    from .expand import load_project
    from .plan import prepare as make

    project = load_project(storyboard, _overrides(sets), backend)
    p = make(
        project,
        backend=backend,
        force=force,
        only=only,
        cache_dir=cache_dir,
        include_approved=include_approved,
        remote=remote_of(remote),
        warn=warn,
    )
    if as_json:
        import json

        click.echo(json.dumps(p.to_json(), ensure_ascii=False, indent=1))
    else:
        from .tables import plan_table

        click.echo(plan_table(p))


@main.command()
@storyboard_arg
@set_opt
@backend_opt
@cache_opt
@json_opt
@click.option(
    "-j", "--jobs", type=click.IntRange(1, 256), default=4, show_default=True, help="Shots in flight at once."
)
@click.option(
    "--only", multiple=True, metavar="SHOT", help="Render only SHOT and its upstream (repeatable; globs: 'arrival/*')."
)
@click.option(
    "--force",
    multiple=True,
    metavar="SHOT",
    help="Render SHOT again even if fresh: a new take; dependents follow (repeatable; globs allowed).",
)
@click.option(
    "--locked", is_flag=True, help="Use exactly the frames in the lock file; never generate; fail if any is missing."
)
@click.option(
    "--max-cost", type=float, default=None, metavar="USD", help="Refuse to start if the estimate exceeds USD."
)
@click.option(
    "--keep-going/--fail-fast",
    default=True,
    show_default=True,
    help="After a failure, finish independent branches (default) or stop starting new shots.",
)
@click.option(
    "--wait",
    type=float,
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another render of this project to finish.",
)
@click.option("--refresh-urls", is_flag=True, help="Fetch reference URLs again instead of using the pinned bytes.")
@click.option(
    "--include-approved",
    is_flag=True,
    help="Render approved shots whose storyboard changed too (default: they are held, frames kept).",
)
@click.option("-v", "--verbose", is_flag=True, help="List cached nodes too.")
@remote_opt
def render(
    storyboard: Path,
    sets,
    backend,
    cache_dir,
    as_json,
    jobs,
    only,
    force,
    locked,
    max_cost,
    keep_going,
    wait,
    refresh_urls,
    include_approved,
    verbose,
    remote,
) -> None:
    """Render what changed; fresh frames come from the cache. Exit 1 if any shot failed."""
    from .render import RenderOptions
    from .render import render as run

    options = RenderOptions(
        backend=backend,
        jobs=jobs,
        force=force,
        only=only,
        locked=locked,
        max_cost=max_cost,
        overrides=_overrides(sets),
        cache_dir=cache_dir,
        wait=wait,
        refresh_urls=refresh_urls,
        fail_fast=not keep_going,
        include_approved=include_approved,
        own_process=True,
        remote=remote_of(remote),
    )
    summary = run(storyboard, options, _reporter(as_json, verbose))
    if not summary.ok:
        sys.exit(1)


@main.command()
@storyboard_arg
@cache_opt
@remote_opt
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=16, show_default=True, help="Uploads in flight.")
def push(storyboard: Path, cache_dir, remote, jobs) -> None:
    """Upload the frames and records the lock file pins to the team cache (what the remote lacks)."""
    _transfer("push", storyboard, cache_dir, remote, jobs)


@main.command()
@storyboard_arg
@cache_opt
@remote_opt
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=16, show_default=True, help="Downloads in flight.")
def pull(storyboard: Path, cache_dir, remote, jobs) -> None:
    """Download the frames the lock file pins from the team cache (each verified by its hash)."""
    _transfer("pull", storyboard, cache_dir, remote, jobs)


def _transfer(direction: str, storyboard: Path, cache_dir, remote, jobs: int) -> None:
    from .remote import transfer

    with _progress(f"{direction}ing") as progress:
        url, report = transfer(
            direction, storyboard, remote_of(remote), cache_dir=cache_dir, jobs=jobs, progress=progress, warn=warn
        )
    if direction == "push":
        click.echo(
            f"pushed {report.uploaded} objects and {report.records} records to {url} ({report.present} already there)"
        )
    else:
        click.echo(f"pulled {report.downloaded} objects from {url} ({report.present} already here)")
    for name, why in report.failures:
        click.echo(f"  not {direction}ed {name}: {why}", err=True)
    if report.failures:
        sys.exit(1)


def _progress(label: str):
    """A progress bar on a terminal (stderr), else nothing: a callable (done, total)."""
    import contextlib

    if not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        return contextlib.nullcontext(None)

    @contextlib.contextmanager
    def bar():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as progress:
            task = progress.add_task(label, total=None)
            yield lambda done, total: progress.update(task, completed=done, total=total)

    return bar()


def _reporter(as_json: bool, verbose: bool):
    from .report import JsonReporter, PlainReporter

    if as_json:
        return JsonReporter()
    if sys.stdout.isatty() and os.environ.get("TERM") != "dumb":
        from .report import RichReporter

        return RichReporter(verbose=verbose)
    return PlainReporter(verbose=verbose)


@main.command()
@storyboard_arg
@set_opt
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg"]), default="mermaid", show_default=True)
@output_opt("-o", "--output", help="Write to a file instead of standard output.")
def graph(storyboard: Path, sets, fmt, output) -> None:
    """Print the DAG of shots and sheets as Mermaid, DOT or SVG."""

    from . import graph as graphs
    from .expand import load_project

    project = load_project(storyboard, _overrides(sets))
    if output and str(output) != "-":
        from . import outputs

        outputs.check(output, project)
    g = graphs.build(project)
    text = graphs.to_mermaid(project, g) if fmt == "mermaid" else graphs.to_dot(project, g)
    if fmt == "svg":
        text = graphs.to_svg(text)
    if output and str(output) != "-":
        outputs.write(output, text.encode("utf-8"))
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@main.command()
@storyboard_arg
@cache_opt
@click.option("--renders", "what", flag_value="renders", help="Remove renders/ (default): the cache can restore them.")
@click.option(
    "--purge-cache",
    "what",
    flag_value="cache",
    help=(
        "Remove the cache (.shotflow/, or --cache DIR): every frame is then rendered again, and on Runware "
        "paid for again, those in renders/ too (unless a team remote holds them)."
    ),
)
@click.option("--all", "what", flag_value="all", help="Remove both.")
@click.option("-n", "--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--force", is_flag=True, help="Remove the cache even when tasks sent to Runware are still pending.")
def clean(storyboard: Path, cache_dir, what, dry_run, force) -> None:
    """Remove renders/, the cache, or both (the lock file is kept)."""

    from .clean import clean as do_clean

    for line in do_clean(storyboard, what or "renders", cache_dir=cache_dir, dry_run=dry_run, force=force):
        click.echo(line)


@main.command()
@storyboard_arg
@cache_opt
def verify(storyboard: Path, cache_dir) -> None:
    """Hash every object of the cache and every frame the lock names; report what is corrupt or missing."""

    from .verify import verify as check

    findings = check(storyboard, cache_dir=cache_dir)
    for line in findings.lines():
        click.echo(line)
    if not findings.ok:
        sys.exit(1)


@main.command()
@click.argument(
    "folder", required=False, default=".", metavar="[DIR]", type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--force", is_flag=True, help="Replace an existing storyboard.yaml.")
def init(folder: Path, force: bool) -> None:
    """Start a project in DIR (default: here): a commented storyboard.yaml and a .gitignore."""

    from .load import display_path
    from .scaffold import init_project

    written = init_project(folder, force=force, note=lambda text: click.echo(text, err=True))
    click.echo("wrote " + ", ".join(display_path(p) for p in written))
    into = "" if folder.resolve() == Path.cwd() else f"cd {display_path(folder)} && "
    click.echo(f"next: {into}shotflow render    (offline previews; then shotflow board for the HTML board)")


@main.command()
@click.option(
    "--model", default=None, metavar="ID", help="Print a model's request schema instead (runway:4@1, runway:4@2)."
)
@click.option("--list-models", is_flag=True, help="List the models in the catalog with their prices.")
def schema(model, list_models) -> None:
    """Print the storyboard JSON Schema (for editors: yaml-language-server, VS Code)."""

    from . import catalog
    from ._resources import schema_path

    if list_models:
        for spec in catalog.models().values():
            click.echo(
                f"{spec.id:12} {spec.name:28} ${spec.price_per_image:.2f}/image  "
                f"refs {spec.min_refs}-{spec.max_refs}  {len(spec.sizes)} sizes"
            )
        return
    if model:
        click.echo(catalog.get(model).path.read_text(encoding="utf-8"), nl=False)
        return
    click.echo(schema_path().read_text(encoding="utf-8"), nl=False)


@main.command()
@storyboard_arg
@set_opt
@backend_opt
@cache_opt
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to serve the board on (0 picks a free one).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback shares the board on a network: it then needs "
    "the token in the URL that watch prints.",
)
@click.option("--no-open", is_flag=True, help="Do not open the board in a browser.")
@click.option(
    "-j", "--jobs", type=click.IntRange(1, 256), default=4, show_default=True, help="Shots in flight at once."
)
@click.option(
    "--max-cost",
    type=float,
    default=None,
    metavar="USD",
    help="Refuse a round (before spending anything) whose estimate exceeds USD.",
)
@click.option("--include-approved", is_flag=True, help="Render approved shots whose storyboard changed too.")
def watch(storyboard: Path, sets, backend, cache_dir, port, host, no_open, jobs, max_cost, include_approved) -> None:
    """Serve a live board: save the storyboard and the changed frames appear; pick, approve and note from it.

    \b
    shotflow watch storyboard.yaml                 serves http://127.0.0.1:8765/ and opens it
    shotflow watch storyboard.yaml --port 0 --no-open
    Each save of the storyboard, an include, a template or a reference file renders what
    changed (the same cache and rules as render) and updates every open board. Needs
    pip install 'shotflow[live]'.
    """
    from .live.server import ServeOptions, serve
    from .render import RenderOptions

    options = RenderOptions(
        backend=backend,
        jobs=jobs,
        max_cost=max_cost,
        overrides=_overrides(sets),
        cache_dir=cache_dir,
        wait=30.0,
        include_approved=include_approved,
        remote=remote_of(None),
    )
    if not storyboard.is_file():
        from .errors import UsageError

        raise UsageError(f"{storyboard}: no such storyboard")
    serve(storyboard, options, ServeOptions(host=host, port=port, open_browser=not no_open))


@main.group()
def review() -> None:
    """Review decisions (picks, approvals, notes) from a board, into the storyboard."""


@review.command("apply")
@click.argument("review_file", metavar="REVIEW.JSON", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("storyboard", required=False, type=click.Path(dir_okay=False, path_type=Path))
@trust_opts
@click.option("-n", "--dry-run", is_flag=True, help="Only say what would be written.")
def review_apply(review_file: Path, storyboard: Path | None, dry_run: bool) -> None:
    """Write a board's exported review.json into the storyboard (comments and formatting kept).

    \b
    shotflow review apply review.json                    (the storyboard it names, here or beside it)
    shotflow review apply ~/Downloads/review.json storyboard.yaml
    All or nothing: every decision is checked first; a note already there is not added twice.
    """

    from .load import display_path
    from .review import apply, read_review_file, resolve_storyboard

    named, decisions = read_review_file(review_file)
    story = resolve_storyboard(review_file, named, storyboard)
    written = apply(story, decisions, write=not dry_run)  # every decision checked first, a dry run too
    for d in decisions:
        click.echo(f"{d.shot}: {', '.join(d.describe()) or 'nothing'}")
    if dry_run:
        click.echo(f"dry run: nothing written to {display_path(story)}")
        return
    if written:
        click.echo("wrote " + ", ".join(display_path(p) for p in written))
    else:
        click.echo(f"nothing to change: {display_path(story)} already holds these decisions")


def _register_exports() -> None:
    """Export commands (board, contact-sheet, animatic, export) live in shotflow.exports."""
    from .exports import commands

    for command in commands():
        main.add_command(command)


_register_exports()


def _register_editorial() -> None:
    """``import`` and ``conform`` live in shotflow._editcli."""
    from ._editcli import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_register_editorial()


def run() -> None:
    """The ``shotflow`` command: ``main``, then the process ends as soon as its work is done.

    A Python process spends 0.1-0.3 s after its last line freeing every object one by one
    (measured here after a 400-shot render: a final garbage collection, then the modules torn
    down), memory that the system takes back at once anyway. When no thread is still working,
    the exit handlers run, the standard streams are flushed, and the process ends there.
    """
    import atexit
    import threading

    try:
        main()
        code: str | int | None = 0
    except SystemExit as exc:
        code = exc.code
    working = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if working or not (code is None or isinstance(code, int)):
        sys.exit(code)  # a thread is still busy, or a message to print: the usual way out
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)  # a closed or broken pipe: let the interpreter report it as it does
    os._exit(code or 0)
