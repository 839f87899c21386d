"""Readable text tables for the terminal (plan)."""

from __future__ import annotations

from .plan import Plan, Status


def plan_table(plan: Plan) -> str:
    """The plan as a table: every node in story order, what happens to it and why."""
    rows = [("STATUS", "NODE", "MODEL", "SIZE", "TAKES", "COST", "WHY")]
    for node in plan.nodes.values():
        spec = node.spec
        fresh = node.status is Status.FRESH
        rows.append((node.status.value, spec.id, spec.model, spec.size, str(spec.takes),
                     "" if fresh else f"${node.cost:.2f}", ("from the remote" if node.from_remote else "") if fresh else (node.reason or "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    title = plan.project.title or plan.project.path.name
    lines.append(f"plan for {title} on the {plan.backend} backend")
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    render = sum(1 for n in plan.nodes.values() if n.status is Status.RENDER)
    fresh = len(plan.nodes) - render
    cost = f"estimated cost ${plan.cost:.2f} on {plan.backend}"
    if plan.backend == "preview" and plan.runware_cost:
        cost += f" (${plan.runware_cost:.2f} on runware)"
    remote = sum(1 for n in plan.nodes.values() if n.from_remote)
    fresh_text = f"{fresh} fresh ({remote} from the remote)" if remote else f"{fresh} fresh"
    lines.append(f"{len(plan.nodes)} nodes: {render} to render, {fresh_text}; {cost}")
    if plan.critical_path:
        lines.append(f"critical path ({len(plan.critical_path)} renders in a chain): " + " -> ".join(plan.critical_path))
    return "\n".join(lines)
