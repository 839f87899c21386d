"""The editorial commands: ``import`` (a Fountain screenplay to a storyboard) and ``conform``
(an editor's cut back into the storyboard). Argument parsing only; each calls its module:

    shotflow import SCRIPT  -> fountain.read, importing.draft / importing.update
    shotflow conform CUT    -> conform.read_cut, conform.compare, conform.apply

Like every command module, this imports click and nothing else at the top.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._cliopts import run_guarded


@click.command("import")
@click.argument("script", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PATH",
              help="Where to write the new storyboard (default: SCRIPT's name with .yaml, beside it).")
@click.option("--update", "update_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              metavar="STORYBOARD", help="Read a revised script into this storyboard: add new scenes, report "
                                         "removed and renamed ones, never touch existing shots.")
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

    def go():
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
        from .importing import draft, to_yaml
        from .store import atomic_write

        target = output or script.with_suffix(".yaml")
        if target.exists() and not force:
            raise UsageError(f"{display_path(target)} exists: shotflow import does not overwrite a storyboard",
                             hint=f"use --update {display_path(target)} to read the script into it, "
                                  "or --force to replace it")
        d = draft(play)
        text = to_yaml(d, source=script.name, name=target.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, text.encode("utf-8"), mode=0o644)
        click.echo(f"wrote {display_path(target)} ({len(d.scenes)} scenes, {len(d.characters)} characters, "
                   f"{len(d.locations)} locations)")

    run_guarded(go)


COMMANDS = (import_,)
