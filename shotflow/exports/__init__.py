"""Stage 9: exports read what a render left (lock, cache, renders) and never generate.

``commands()`` lists the export commands for the CLI (they live in ``_cli``, which
imports only click: each export module loads when its command runs).

    _frames     the shared reading layer: per node, in story order, its state and frames
    board       shotflow board          a self-contained HTML storyboard
    contact     shotflow contact-sheet  a PNG / PDF grid of the picked frames
    animatic    shotflow animatic       MP4 (H.264) / GIF, each shot for its duration
    timeline    shotflow export --otio / --fcp-xml / --fcpxml   an editor's timeline
    shotlist    shotflow export --csv   a shot list
"""

from __future__ import annotations


def commands() -> list:
    from ._cli import animatic, board, contact_sheet, export

    return [board, contact_sheet, animatic, export]
