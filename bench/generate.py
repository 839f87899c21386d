"""Synthetic storyboards for the benchmarks: N shots that look like a real previs project.

    python bench/generate.py 1000 [--depth 8] [--seed 0] [--out DIR]

writes::

    DIR/storyboard.yaml     include: [cast.yaml]; scenes of ~50 shots; Jinja prompts, camera notes
    DIR/cast.yaml           characters (most with a generated sheet) and locations
    DIR/refs/*.jpg          the few characters and locations given as image files
    DIR/bench-meta.json     what was generated: shots, sheets, edges, longest chain, ...

The shape, per shot (DESIGN.md §1)::

    location (sheet, image or words) ─┐
    cast     (0-2 characters)         ├─► at most 3 references in all (the Gen-4 limit)
    refs     (earlier shots)          ┘   shot chains at most --depth shots long

Everything is a function of (N, depth, seed): the same arguments give the same bytes.
The module is also imported by the other benchmarks (``build()`` gives the same
storyboard as data, and its DAG, without touching the disk or importing shotflow).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

MAX_REFS = 3  # runway:4@1 and runway:4@2 take at most 3 reference images
PROMPT_BUDGET = 930  # expanded prompt (template included) stays under the model's 1000
SCENE_SIZE = 50
META_VERSION = 2  # of bench-meta.json: a newer one is rewritten, the storyboard (same bytes) is not

CHARACTER_NAMES = [
    "mara",
    "tom",
    "ines",
    "oskar",
    "leni",
    "bruno",
    "yara",
    "felix",
    "noor",
    "anton",
    "greta",
    "milo",
    "sasha",
    "edda",
    "rafael",
    "ulla",
    "kasimir",
    "petra",
    "hugo",
    "zofia",
    "vito",
    "alma",
    "jonas",
    "rina",
]
LOCATION_NAMES = [
    "lighthouse",
    "harbor",
    "tavern",
    "cannery",
    "chapel",
    "ferry",
    "cliffs",
    "market",
    "station",
    "attic",
    "boatyard",
    "pier",
]
AGES = ["in her sixties", "in his twenties", "in her thirties", "in his fifties", "barely eighteen", "in her forties"]
LOOKS = [
    "yellow oilskin coat and a long silver braid",
    "navy pea coat, wire-rimmed glasses and a knitted cap",
    "burgundy trench coat with the collar turned up",
    "grease-stained overalls and a red bandana",
    "a grey wool suit two sizes too big",
    "a fisherman's sweater, rope scar across one palm",
    "a black raincoat and rubber boots to the knee",
    "a green headscarf and a battered leather satchel",
]
ROLES = [
    "lighthouse keeper",
    "radio operator",
    "harbour master",
    "smuggler",
    "ferry captain",
    "cannery foreman",
    "village priest",
    "young deckhand",
    "retired schoolteacher",
    "coast-guard officer",
    "net mender",
    "innkeeper",
]
PLACES = [
    "a red-and-white lighthouse on black basalt above a winter sea",
    "a cramped harbour of tarred pilings, stacked crates and gull-streaked bollards",
    "a low-beamed tavern with a peat fire, brass lamps and salt-stained windows",
    "a derelict cannery, rusted conveyor lines under a broken skylight",
    "a whitewashed chapel on the headland, its graveyard leaning into the wind",
    "the open car deck of a small ferry, chains and puddles and a flickering sodium lamp",
    "sheer chalk cliffs with a goat path switchbacking down to the shingle",
    "a covered fish market at dawn, ice, steel tables and hanging scales",
    "a coast-guard radio station full of green-lit dials and ashtrays",
    "an attic room under the eaves, sea charts pinned to every slope of the roof",
    "a boatyard of upturned hulls on trestles, sawdust and pitch smoke",
    "a long timber pier on rusted stilts, lamps strung along its rail",
]
ACTIONS = [
    "forces the door open against the wind",
    "climbs the iron spiral staircase, lantern in hand",
    "studies a torn sea chart under a swinging bulb",
    "hauls a dripping net over the gunwale",
    "waits in the doorway, watching the road",
    "reads a telegram twice and folds it away",
    "counts coins on the bar with slow deliberate fingers",
    "turns sharply at a sound off screen",
    "wipes fog from the window with a sleeve",
    "lights a cigarette in cupped hands",
    "drags a crate across wet boards",
    "stops halfway through a sentence",
    "runs along the quay",
]
DETAILS = [
    "rain needles across the frame",
    "a gull hangs motionless in the updraft",
    "breath fogs in the cold air",
    "the lamp beam sweeps the clouds behind",
    "puddles reflect a single sodium light",
    "steam rises from a tin mug on the table",
    "a radio crackles somewhere out of frame",
    "spray bursts over the railing",
    "the floorboards are dark with seawater",
    "a clock reads ten past four",
    "loose papers lift in a sudden draught",
    "a dog barks far down the harbour",
    "frost rims the window glass",
    "the last light turns the water to hammered copper",
    "a door bangs twice in the wind",
]
MOODS = ["tense", "quiet", "melancholy", "urgent", "tender", "ominous", "weary", "hopeful"]
FRAMINGS = [
    "extreme wide",
    "wide",
    "full",
    "medium",
    "medium close-up",
    "close-up",
    "extreme close-up",
    "over the shoulder",
    "insert",
]
ANGLES = ["eye level", "low angle", "high angle", "bird's eye", "dutch angle"]
LENSES = ["18mm", "24mm", "35mm", "50mm", "85mm", "135mm"]
MOVES = [
    "static",
    "pan left",
    "pan right",
    "tilt up",
    "dolly in",
    "dolly out",
    "handheld",
    "crane up",
    "slow push in",
    "tracking left",
]
DIALOGUE = [
    "Coast guard, this is Skerry Light. Do you read?",
    "You should not have come back here.",
    "The tide turns at four. We leave at four.",
    "Tell him I kept the lamp lit.",
    "Nobody saw a thing. Understood?",
    "It was never about the money.",
    "Look at the water. Something is wrong with the water.",
]


@dataclass
class Entity:
    name: str
    description: str
    kind: str  # "sheet" | "image" | "words"

    @property
    def node(self) -> bool:
        return self.kind == "sheet"

    @property
    def is_ref(self) -> bool:
        return self.kind in ("sheet", "image")


@dataclass
class Shot:
    id: str
    prompt: str
    expanded: str  # what shot.j2 will make of it (estimated here, checked by shotflow validate)
    camera: dict[str, str]
    cast: list[str] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)  # "scene/shot" ids of earlier shots
    duration: float = 2.0
    takes: int = 1
    pick: int = 1
    model: str | None = None
    action: str | None = None
    dialogue: str | None = None
    notes: str | None = None


@dataclass
class Scene:
    id: str
    title: str
    location: str
    description: str
    shots: list[Shot]


@dataclass
class Board:
    n: int
    depth: int
    seed: int
    style: str
    style_expanded: str
    vars: dict[str, str]
    characters: dict[str, Entity]
    locations: dict[str, Entity]
    scenes: list[Scene]

    # -- the DAG, as shotflow will build it (DESIGN.md §3) --------------------------------

    def deps(self) -> dict[str, list[str]]:
        """node id -> the node ids it references (sheets and shots; files are not nodes), story order."""
        result: dict[str, list[str]] = {}
        for kind, table in (("character", self.characters), ("location", self.locations)):
            for name, entity in table.items():
                if entity.node:
                    result[f"{kind}:{name}"] = []
        for scene in self.scenes:
            loc = self.locations[scene.location]
            for shot in scene.shots:
                ds = [f"location:{loc.name}"] if loc.node else []
                ds += [f"character:{c}" for c in shot.cast if self.characters[c].node]
                ds += shot.refs
                result[f"{scene.id}/{shot.id}"] = list(dict.fromkeys(ds))
        return result

    def stats(self) -> dict[str, object]:
        deps = self.deps()
        chain: dict[str, int] = {}
        for node, ds in deps.items():  # story order is a topological order: refs point backwards
            chain[node] = 1 + max((chain[d] for d in ds), default=0)
        shots = sum(len(s.shots) for s in self.scenes)
        target, downstream = self.edit_target(deps)
        shot_chain: dict[str, int] = {}
        for scene in self.scenes:
            for shot in scene.shots:
                shot_chain[f"{scene.id}/{shot.id}"] = 1 + max((shot_chain[r] for r in shot.refs), default=0)
        fan_in = [len(self._ref_list(scene, shot)) for scene in self.scenes for shot in scene.shots]
        return {
            "shots": shots,
            "sheets": len(deps) - shots,
            "nodes": len(deps),
            "edges": sum(len(d) for d in deps.values()),
            "scenes": len(self.scenes),
            "characters": len(self.characters),
            "locations": len(self.locations),
            "longest_chain": max(chain.values(), default=0),  # nodes, sheets included
            "max_shot_depth": max(shot_chain.values(), default=0),
            "max_fan_in": max(fan_in, default=0),
            "mean_fan_in": round(sum(fan_in) / max(1, len(fan_in)), 3),
            "max_expanded_prompt": max((len(s.expanded) for sc in self.scenes for s in sc.shots), default=0),
            "takes": sum(s.takes for sc in self.scenes for s in sc.shots),
            "edit_target": target,  # the shot the edit benchmarks change, and what re-renders with it
            "edit_renders": downstream,
        }

    def edit_target(self, deps: dict[str, list[str]] | None = None) -> tuple[str, int]:
        """The shot of the middle scene with the most downstream nodes (itself included)."""
        deps = deps or self.deps()
        users: dict[str, list[str]] = {node: [] for node in deps}
        for node, ds in deps.items():
            for d in ds:
                users[d].append(node)

        def closure(node: str) -> int:
            seen, todo = {node}, [node]
            while todo:
                for user in users[todo.pop()]:
                    if user not in seen:
                        seen.add(user)
                        todo.append(user)
            return len(seen)

        scene = self.scenes[len(self.scenes) // 2]
        best = max((f"{scene.id}/{shot.id}" for shot in scene.shots), key=lambda node: (closure(node), -len(node)))
        return best, closure(best)

    def _ref_list(self, scene: Scene, shot: Shot) -> list[str]:
        refs = [scene.location] if self.locations[scene.location].is_ref else []
        refs += [c for c in shot.cast if self.characters[c].is_ref]
        return refs + shot.refs


def _sentence(rng: random.Random, items: list[str], k: int) -> str:
    return ", ".join(rng.sample(items, k))


def _camera_text(camera: dict[str, str]) -> tuple[str, str]:
    """What the built-in shot.j2 puts before and after the prompt (for the length estimate)."""
    head = ""
    if camera.get("framing"):
        head = camera["framing"] + " shot" + (", " + camera["angle"] if camera.get("angle") else "") + ": "
    elif camera.get("angle"):
        head = camera["angle"] + ": "
    tail = ""
    if camera.get("lens"):
        tail += ", " + camera["lens"] + " lens"
    if camera.get("move") and camera["move"] != "static":
        tail += ", camera " + camera["move"]
    return head, tail


def build(n: int, depth: int = 8, seed: int = 0) -> Board:
    """The storyboard as data (deterministic in its arguments)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    depth = max(1, depth)
    rng = random.Random(f"shotflow-bench:{n}:{depth}:{seed}")
    n_chars = max(4, min(len(CHARACTER_NAMES), n // 40))
    n_locs = max(3, min(len(LOCATION_NAMES), n // 100))
    characters: dict[str, Entity] = {}
    for i, name in enumerate(CHARACTER_NAMES[:n_chars]):
        kind = "image" if i % 6 == 1 else "words" if i % 6 == 4 else "sheet"
        desc = (
            f"{rng.choice(['a weathered', 'a nervous', 'a broad-shouldered', 'a slight', 'a sharp-eyed'])} "
            f"{rng.choice(ROLES)} {rng.choice(AGES)}, {rng.choice(LOOKS)}"
        )
        characters[name] = Entity(name, desc, kind)
    locations: dict[str, Entity] = {}
    for i, name in enumerate(LOCATION_NAMES[:n_locs]):
        kind = "sheet" if i % 3 == 0 else "image" if i % 3 == 1 else "words"
        locations[name] = Entity(name, PLACES[i], kind)

    grade = "teal and amber grade"
    style = "moody 35mm film still, {{ vars.grade }}, soft haze, anamorphic flares"
    style_expanded = style.replace("{{ vars.grade }}", grade)
    variables = {"grade": grade, "weather": "a winter storm rolling in from the north"}

    n_scenes = max(1, round(n / SCENE_SIZE))
    sizes = [n // n_scenes + (1 if i < n % n_scenes else 0) for i in range(n_scenes)]
    scenes: list[Scene] = []
    shot_depth: dict[str, int] = {}
    loc_names = list(locations)
    char_names = list(characters)
    for si, size in enumerate(sizes):
        sid = f"sc{si + 1:04d}"
        location = loc_names[(si * 7 + rng.randrange(2)) % len(loc_names)]
        scene_cast = rng.sample(char_names, min(len(char_names), rng.randint(2, 4)))
        mood, hour = rng.choice(MOODS), rng.choice(["night", "dawn", "noon", "dusk"])
        scene = Scene(
            id=sid,
            title=f"Scene {si + 1}: {mood} {hour}",
            location=location,
            description=f"{rng.choice(MOODS)} beat at the {location}",
            shots=[],
        )
        loc_ref = 1 if locations[location].is_ref else 0
        previous_scene_shots = [f"{s.id}/{h.id}" for s in scenes[-3:] for h in s.shots]
        for hi in range(size):
            hid = f"sh{hi + 1:03d}"
            full = f"{sid}/{hid}"
            budget = MAX_REFS - loc_ref
            cast: list[str] = []
            if hi > 0 or rng.random() < 0.3:
                for member in rng.sample(scene_cast, min(len(scene_cast), rng.choice([1, 1, 1, 2, 2, 0]))):
                    cost = 1 if characters[member].is_ref else 0
                    if cost <= budget:
                        cast.append(member)
                        budget -= cost
            refs: list[str] = []
            in_scene = [f"{sid}/{h.id}" for h in scene.shots]
            if budget and in_scene and rng.random() < 0.8:
                # continuity: one of the last few shots of this scene, preferring the latest
                window = [r for r in reversed(in_scene[-4:]) if shot_depth[r] < depth]
                if not window:
                    window = [r for r in in_scene if shot_depth[r] < depth][:1]
                if window:
                    refs.append(window[0] if rng.random() < 0.7 else rng.choice(window))
                    budget -= 1
            if budget and previous_scene_shots and rng.random() < (0.35 if hi == 0 else 0.08):
                choices = [r for r in previous_scene_shots if shot_depth[r] < depth and r not in refs]
                if choices:
                    refs.append(rng.choice(choices))
                    budget -= 1
            shot_depth[full] = 1 + max((shot_depth[r] for r in refs), default=0)

            camera = {"framing": "extreme wide" if hi == 0 else rng.choice(FRAMINGS)}
            if rng.random() < 0.6:
                camera["angle"] = rng.choice(ANGLES)
            camera["lens"] = rng.choice(LENSES)
            if rng.random() < 0.8:
                camera["move"] = rng.choice(MOVES)

            n_refs = loc_ref + sum(1 for c in cast if characters[c].is_ref) + len(refs)
            tagged = bool(cast) and characters[cast[0]].is_ref and len(refs) <= 1 and rng.random() < 0.1
            parts = _prompt(rng, cast, characters, locations[location], variables, tagged, hi == 0)
            head, tail = _camera_text(camera)
            overhead = len(head) + len(tail) + 2 + len(style_expanded)
            while len(parts) > 2 and len(", ".join(p[1] for p in parts)) + overhead > PROMPT_BUDGET:
                parts.pop()  # drop trailing details until it fits
            prompt, expanded = ", ".join(p[0] for p in parts), ", ".join(p[1] for p in parts)
            shot = Shot(
                id=hid,
                prompt=prompt,
                expanded=head + expanded + tail + ". " + style_expanded,
                camera=camera,
                cast=cast,
                refs=refs,
            )
            shot.duration = rng.choice([1.5, 2.0, 2.5, 3.0, 4.0])
            if rng.random() < 0.05:
                shot.takes = rng.randint(2, 3)
                shot.pick = rng.randint(1, shot.takes)
            if n_refs >= 1 and rng.random() < 0.05:
                shot.model = "runway:4@2"  # Turbo: needs a reference, has one
            if rng.random() < 0.4:
                shot.action = f"{cast[0].title() if cast else 'Someone'} {rng.choice(ACTIONS)}."
            if cast and rng.random() < 0.25:
                shot.dialogue = f"{cast[0].upper()}: {rng.choice(DIALOGUE)}"
            if rng.random() < 0.1:
                shot.notes = f"hold {rng.choice(['a beat', 'two beats', 'on the reaction'])} before cutting"
            scene.shots.append(shot)
        scenes.append(scene)
    return Board(
        n=n,
        depth=depth,
        seed=seed,
        style=style,
        style_expanded=style_expanded,
        vars=variables,
        characters=characters,
        locations=locations,
        scenes=scenes,
    )


def _prompt(rng, cast, characters, location, variables, tagged: bool, establishing: bool) -> list[tuple[str, str]]:
    """The parts of a shot's own prompt: (Jinja source, its expansion) each."""
    parts: list[tuple[str, str]] = []
    if establishing and not cast:
        parts.append(
            ("establishing shot of {{ location.description }}", f"establishing shot of {location.description}")
        )
        parts.append(("{{ vars.weather }}", variables["weather"]))
    else:
        for i, member in enumerate(cast):
            c = characters[member]
            if i == 0:
                who = "@" + member + ", " if tagged else ""
                parts.append(
                    (
                        who + "{{ cast." + member + ".description }} " + rng.choice(ACTIONS),
                        who + c.description + " " + rng.choice(ACTIONS),
                    )
                )
            else:
                parts.append(
                    (
                        "{{ cast." + member + ".name | title }} close behind, " + rng.choice(MOODS),
                        member.title() + " close behind, " + rng.choice(MOODS),
                    )
                )
        if not cast:
            act = f"an empty frame at the {location.name}, {rng.choice(DETAILS)}"
            parts.append((act, act))
        if rng.random() < 0.5:
            parts.append(("inside {{ location.description }}", f"inside {location.description}"))
    mood = f"{rng.choice(MOODS)} mood"
    parts.append((mood, mood))
    for detail in rng.sample(DETAILS, rng.randint(2, 6)):
        parts.append((detail, detail))
    return parts


# -- writing ---------------------------------------------------------------------------------


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return json.dumps(text, ensure_ascii=False)


def _flow(mapping: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {_q(v)}" for k, v in mapping.items()) + "}"


def write(board: Board, out: Path) -> dict[str, object]:
    """Write the storyboard files into ``out``; returns the stats (also in bench-meta.json)."""
    out.mkdir(parents=True, exist_ok=True)
    refs_dir = out / "refs"
    refs_dir.mkdir(exist_ok=True)
    cast = [
        "# yaml-language-server: $schema=../../schemas/library.schema.json",
        f"# generated by bench/generate.py {board.n} --depth {board.depth} --seed {board.seed}",
        "characters:",
    ]
    for name, c in board.characters.items():
        cast.append(f"  {name}:")
        cast.append(f"    description: {_q(c.description)}")
        if c.kind == "sheet":
            cast.append("    sheet:")
            turnaround = (
                "character turnaround of {{ character.description }}, front, side and back views, plain grey backdrop"
            )
            cast.append(f"      prompt: {_q(turnaround)}")
            cast.append("      size: 1K-1:1")
        elif c.kind == "image":
            _write_image(refs_dir / f"{name}.jpg", name)
            cast.append(f"    image: refs/{name}.jpg")
    cast.append("locations:")
    for name, loc in board.locations.items():
        cast.append(f"  {name}:")
        cast.append(f"    description: {_q(loc.description)}")
        if loc.kind == "sheet":
            cast.append("    sheet:")
            cast.append(f"      prompt: {_q('exterior reference of {{ location.description }}, overcast daylight')}")
        elif loc.kind == "image":
            _write_image(refs_dir / f"{name}.jpg", name)
            cast.append(f"    image: refs/{name}.jpg")
    (out / "cast.yaml").write_text("\n".join(cast) + "\n", encoding="utf-8")

    lines = [
        "# yaml-language-server: $schema=../../schemas/storyboard.schema.json",
        f"# generated by bench/generate.py {board.n} --depth {board.depth} --seed {board.seed}",
        "shotflow: 1",
        f"title: Synthetic previs ({board.n} shots)",
        "backend: preview",
        "include: [cast.yaml]",
        "defaults:",
        "  model: runway:4@1",
        "  size: 1K-16:9",
        "  output: {format: PNG, quality: 95}",
        "  duration: 2.5",
        f"style: {_q(board.style)}",
        "vars:",
        *[f"  {k}: {_q(v)}" for k, v in board.vars.items()],
        "scenes:",
    ]
    for scene in board.scenes:
        lines += [
            f"  - id: {scene.id}",
            f"    title: {_q(scene.title)}",
            f"    location: {scene.location}",
            f"    description: {_q(scene.description)}",
            "    shots:",
        ]
        for shot in scene.shots:
            lines.append(f"      - id: {shot.id}")
            if shot.cast:
                lines.append(f"        cast: [{', '.join(shot.cast)}]")
            if shot.refs:
                own = scene.id + "/"
                lines.append(f"        refs: [{', '.join(r.removeprefix(own) for r in shot.refs)}]")
            lines.append(f"        prompt: {_q(shot.prompt)}")
            lines.append(f"        camera: {_flow(shot.camera)}")
            lines.append(f"        duration: {shot.duration}")
            if shot.model:
                lines.append(f"        model: {shot.model}")
            if shot.takes > 1:
                lines.append(f"        takes: {shot.takes}")
                lines.append(f"        pick: {shot.pick}")
            for key in ("action", "dialogue", "notes"):
                value = getattr(shot, key)
                if value:
                    lines.append(f"        {key}: {_q(value)}")
    (out / "storyboard.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return write_meta(board, out)


def write_meta(board: Board, out: Path) -> dict[str, object]:
    stats = board.stats()
    meta = {"version": META_VERSION, "n": board.n, "depth": board.depth, "seed": board.seed, **stats}
    (out / "bench-meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return stats


def _write_image(path: Path, name: str) -> None:
    """A small deterministic JPEG (a gradient with a block), standing in for a photo."""
    if path.exists():
        return
    from PIL import Image, ImageDraw

    h = sum(name.encode()) % 255
    img = Image.new("RGB", (320, 180), (h, 90, 255 - h))
    draw = ImageDraw.Draw(img)
    for x in range(0, 320, 8):
        draw.line([(x, 0), (x, 180)], fill=(h, x % 255, 128))
    draw.rectangle([110, 50, 210, 130], fill=(240, 230, 210))
    img.save(path, "JPEG", quality=85)


def generate(n: int, out: Path, depth: int = 8, seed: int = 0) -> dict[str, object]:
    """Build and write; skipped when ``out`` already holds the same storyboard (same arguments),
    so its renders and caches stay valid (the files keep their mtimes)."""
    meta_path = out / "bench-meta.json"
    same = False
    try:
        meta = json.loads(meta_path.read_text())
        same = (meta["n"], meta["depth"], meta["seed"]) == (n, depth, seed) and (out / "storyboard.yaml").is_file()
        if same and meta.get("version") == META_VERSION:
            return meta
    except (OSError, ValueError, KeyError):
        pass
    board = build(n, depth, seed)
    stats = write_meta(board, out) if same else write(board, out)
    return {"n": n, "depth": depth, "seed": seed, **stats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/generate.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, help="number of shots")
    parser.add_argument("--depth", type=int, default=8, help="longest chain of shot references (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder (default bench/_work/sbN-dD)")
    args = parser.parse_args(argv)
    out = args.out or Path(__file__).resolve().parent / "_work" / f"sb{args.n}-d{args.depth}"
    board = build(args.n, args.depth, args.seed)
    stats = write(board, out)
    print(f"wrote {out / 'storyboard.yaml'}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
