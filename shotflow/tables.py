"""Readable text tables for the terminal (plan)."""

from __future__ import annotations

from ._text import counted
from .plan import Plan
from .status import Status


def plan_table(plan: Plan) -> str:
    """The plan as a table: every node in story order, what happens to it and why."""
    rows = [("STATUS", "NODE", "MODEL", "SIZE", "TAKES", "COST", "WHY")]
    for node in plan.nodes.values():
        spec = node.spec
        unchanged = node.status is not Status.RENDER
        why = (
            f"approved, kept: {node.reason}" if node.status is Status.HELD else "" if unchanged else (node.reason or "")
        )
        rows.append(
            (
                node.status.value,
                spec.id,
                spec.model,
                spec.size,
                str(spec.takes),
                "" if unchanged else f"${node.cost:.2f}",
                "from the remote" if node.from_remote else why,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    title = plan.project.title or plan.project.path.name
    lines.append(f"plan for {title} on the {plan.backend} backend")
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    render = sum(1 for n in plan.nodes.values() if n.status is Status.RENDER)
    held = sum(1 for n in plan.nodes.values() if n.status is Status.HELD)
    fresh = len(plan.nodes) - render - held
    cost = f"estimated cost ${plan.cost:.2f} on {plan.backend}"
    if plan.backend == "preview" and plan.runware_cost:
        cost += f" (${plan.runware_cost:.2f} on runware)"
    kept = f", {held} held (approved; --include-approved renders them)" if held else ""
    remote = sum(1 for n in plan.nodes.values() if n.from_remote)
    fresh_text = f"{fresh} fresh ({remote} from the remote)" if remote else f"{fresh} fresh"
    lines.append(f"{counted(len(plan.nodes), 'node')}: {render} to render, {fresh_text}{kept}; {cost}")
    if plan.critical_path:
        chain = len(plan.critical_path)
        lines.append(
            f"critical path ({'1 render' if chain == 1 else f'{chain} renders in a chain'}): "
            + " -> ".join(plan.critical_path)
        )
    return "\n".join(lines)
