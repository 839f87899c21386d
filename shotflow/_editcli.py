"""The editorial commands: ``import`` (a Fountain screenplay to a storyboard) and ``conform``
(an editor's cut back into the storyboard). Argument parsing only; each calls its module:

    shotflow import SCRIPT  -> fountain.read, importing.draft / importing.update
    shotflow conform CUT    -> conform.read_cut, conform.compare, conform.apply

Like every command module, this imports click and nothing else at the top.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ._cliopts import ShotflowCommand, output_opt, trust_opts


@click.command(cls=ShotflowCommand, name="import")
@click.argument("script", type=click.Path(dir_okay=False, path_type=Path))
@trust_opts
@output_opt("-o", "--output", help="Where to write the new storyboard (default: SCRIPT's name with .yaml, beside it).")
@click.option(
    "--update",
    "update_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    metavar="STORYBOARD",
    help="Read a revised script into this storyboard: add new scenes, report "
    "removed and renamed ones, never touch existing shots.",
)
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@click.option("-n", "--dry-run", is_flag=True, help="With --update: only report what would change.")
def import_(script: Path, output, update_path, force, dry_run) -> None:
    """Start a storyboard from a Fountain screenplay (.fountain), or update one from a revised script.

    \b
    shotflow import script.fountain -o storyboard.yaml
    shotflow import script.fountain --update storyboard.yaml
    One scene per scene heading, its location from INT./EXT. and the place, one character per
    speaker, one wide master shot per scene carrying the scene's action and dialogue.
    Needs screenplay-tools: pip install 'shotflow[fountain]'.
    """

    from . import fountain
    from .errors import UsageError
    from .load import display_path

    if output and update_path:
        raise UsageError("give either -o PATH (a new storyboard) or --update STORYBOARD, not both")
    play = fountain.read(script)
    if update_path:
        from .importing import update

        result = update(play, update_path, write=not dry_run)
        for line in result.lines():
            click.echo(line)
        if result.written:
            click.echo("wrote " + ", ".join(display_path(p) for p in result.written))
        elif dry_run:
            click.echo("dry run: nothing written")
        return
    from . import outputs
    from .importing import draft, to_yaml

    target = output or script.with_suffix(".yaml")
    if not outputs.is_stdout(target) and os.path.lexists(target) and not force:  # a dangling link exists too
        raise UsageError(
            f"{display_path(target)} exists: shotflow import does not overwrite a storyboard",
            hint=f"use --update {display_path(target)} to read the script into it, or --force to replace it",
        )
    d = draft(play)
    text = to_yaml(d, source=script.name, name=target.name)
    if not outputs.is_stdout(target):
        target.parent.mkdir(parents=True, exist_ok=True)
    outputs.check(target, what="-o", given=output is not None)  # beside a cloned script: no link out
    outputs.write(target, text.encode("utf-8"))
    shown = "standard output" if outputs.is_stdout(target) else display_path(target)
    click.echo(
        f"wrote {shown} ({len(d.scenes)} scenes, {len(d.characters)} characters, {len(d.locations)} locations)",
        err=outputs.is_stdout(target),
    )


@click.command(cls=ShotflowCommand, name="conform")
@click.argument("cut", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@trust_opts
@click.option(
    "-s",
    "--storyboard",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The storyboard to conform (default: the one the .otio was exported from when it is under "
    "the current folder, else ./storyboard.yaml).",
)
@click.option("--write", is_flag=True, help="Apply the changes to the storyboard's YAML (comments kept).")
@click.option(
    "--fps",
    default=None,
    metavar="RATE",
    help="The cut's frame rate (default: the storyboard's editorial.fps); an EDL does not say it: "
    "give the rate it was exported at.",
)
def conform(cut: Path, storyboard, write, fps) -> None:
    """Read an editor's cut back into the storyboard: durations, order, dropped shots.

    \b
    shotflow conform cut.otio                 report what the edit changed
    shotflow conform cut.xml --write          apply it: new durations, shot order within scenes,
                                              omit: true for shots dropped from the cut
    Clips are matched to shots by the id shotflow put in their metadata, else by their frame's
    file or their name; clips that are not shots are listed, never invented.
    """

    from .conform import apply, compare
    from .editorial import parse_fps
    from .expand import load_project
    from .load import display_path

    rate = parse_fps(fps, option="--fps") if fps is not None else None
    story = storyboard or _storyboard_of(cut)
    project = load_project(story)
    result = compare(project, cut, fps=rate)
    click.echo(f"conforming {display_path(project.path)} to {display_path(cut)}")
    for line in result.lines():
        click.echo(line)
    if not result.exact:
        click.echo("note: the storyboard cannot reproduce this cut exactly (see above)")
    if write and result.changes:
        written = apply(result)
        click.echo("wrote " + (", ".join(display_path(p) for p in written) or "nothing"))
    elif result.changes:
        click.echo("run again with --write to apply")


def _storyboard_of(cut: Path) -> Path:
    """The storyboard an .otio names, when it is under the current folder; else ./storyboard.yaml.

    A cut comes from someone else: its recorded path is used only inside the current project.
    """
    from .errors import UsageError

    here = Path.cwd().resolve()
    if cut.suffix.lower() == ".otio":
        import json

        try:
            recorded = (
                json.loads(cut.read_text(encoding="utf-8")).get("metadata", {}).get("shotflow", {}).get("storyboard")
            )
        except (OSError, ValueError, AttributeError):
            recorded = None
        if isinstance(recorded, str):
            path = Path(recorded).resolve()
            if path.is_file() and path.is_relative_to(here) and path.suffix in (".yaml", ".yml"):
                return path
    default = here / "storyboard.yaml"
    if default.is_file():
        return default
    raise UsageError(
        f"which storyboard does {cut.name} conform?",
        hint="give it with --storyboard FILE (or run in the folder of storyboard.yaml)",
    )


COMMANDS = (import_, conform)
