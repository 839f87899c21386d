"""Editorial time: frame rates as exact rationals, timecode, frame counts, shot codes.

    editorial:                       # in the storyboard (all optional)
      fps: 23.976                    # 23.976 24 25 29.97 30 50 59.94 60 -> Fraction(24000, 1001) ...
      start: "01:00:00:00"           # the timecode of the first frame of the cut
      shot_code: "{scene_number:03d}_{shot_number:04d}"     # -> 010_0010, 010_0020, 020_0010 ...

    durations (s)   2.5     1.5     2.0          at 23.976 fps (24000/1001)
    cut at frame    60      96      144          round(cumulative seconds x fps), exact rationals
    frames          60      36      48           every clip starts and ends on a frame; the total is exact

NTSC rates are never floats here: 23.976 is 24000/1001 and 29.97 is 30000/1001, so a cut
point computed from seconds lands on the same frame on every machine, and an hour of
23.976 is 86 313.6 frames, not 86 313.6 ± a float's error. Timecode at 29.97 and 59.94
counts in drop-frame (``01:00:00;00``), the broadcast convention and OpenTimelineIO's
default at those rates; at 23.976 there is no drop-frame, so it counts as 24.

Shot codes number scenes and shots in steps of 10 (the industry's habit: a shot added
between 0010 and 0020 becomes 0015). Omitted shots keep their number, so dropping a
shot from the cut does not renumber the others. The format is a Python format string
restricted to the fields below (a storyboard is shared data: no attribute or index access).

This module is light (fractions, re, string): the CLI and expand import it freely.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from fractions import Fraction

from .errors import InputError, UsageError

#: The rates a storyboard or ``--fps`` may name, as an editor says them.
RATES: dict[str, Fraction] = {
    "23.976": Fraction(24000, 1001),
    "24": Fraction(24),
    "25": Fraction(25),
    "29.97": Fraction(30000, 1001),
    "30": Fraction(30),
    "50": Fraction(50),
    "59.94": Fraction(60000, 1001),
    "60": Fraction(60),
}
DEFAULT_FPS = Fraction(24)
DEFAULT_SHOT_CODE = "{scene_number:03d}_{shot_number:04d}"
#: Fields a shot code may use; numbers count in steps of 10 (scene_index / shot_index count 1, 2, 3).
CODE_FIELDS = {
    "scene_number": int,
    "shot_number": int,
    "scene_index": int,
    "shot_index": int,
    "scene": str,
    "shot": str,
}
CODE_STEP = 10
_TIMECODE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})[:;.](\d{2})$")
_CODE_SPEC = re.compile(r"^[<>^=]?[0-9]{0,2}d?$|^[<>^]?[0-9]{0,2}s?$")


def parse_fps(value: object, *, option: str = "fps", whole: range | None = None) -> Fraction:
    """``23.976``, ``"23.976"``, ``"24000/1001"``, ``25`` -> the exact rate; anything else is an error.

    ``whole`` also admits whole rates in that range (the animatic takes a GIF at 12 fps).
    """
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if text in RATES:
        return RATES[text]
    if whole is not None and text.isdigit() and int(text) in whole:
        return Fraction(int(text))
    try:
        exact = Fraction(text)
    except (ValueError, ZeroDivisionError):
        exact = None
    if exact is not None:
        for rate in RATES.values():
            if exact == rate:
                return rate
    also = f", or a whole number from {whole.start} to {whole.stop - 1}" if whole is not None else ""
    raise UsageError(
        f"{option} {text}: not a frame rate shotflow knows",
        hint="use one of " + ", ".join(RATES) + f"{also} (23.976 is 24000/1001, 29.97 is 30000/1001)",
    )


def fps_label(fps: Fraction) -> str:
    """``Fraction(24000, 1001)`` -> ``"23.976"``; ``Fraction(25)`` -> ``"25"``."""
    for name, rate in RATES.items():
        if rate == fps:
            return name
    return f"{float(fps):g}"


def nominal(fps: Fraction) -> int:
    """Frames counted per timecode second: 24 at 23.976, 30 at 29.97."""
    return round(fps)


def is_drop_frame(fps: Fraction) -> bool:
    return fps.denominator == 1001 and nominal(fps) in (30, 60)


def exact(seconds) -> Fraction:
    """A duration as the decimal the user wrote: 2.544 is 2544/1000, not the float nearest it."""
    if isinstance(seconds, float):
        return Fraction(repr(seconds))
    return Fraction(seconds)


def round_half_up(value: Fraction) -> int:
    """Half a frame rounds up, as a person rounds (Python's round() goes to the even one)."""
    return math.floor(value + Fraction(1, 2))


def frame_counts(durations, fps: Fraction | int) -> list[int]:
    """Frames per shot so that the cut points, and so the total, are exact to the frame.

    Cumulative times are rounded, not each shot: three shots of 1.01 s at 24 fps are cut
    at frames 24, 48 and 73, so they get 24, 24 and 25 frames (73 = round(3.03 x 24)),
    never 24 x 3 = 72. Durations are the decimals written in the storyboard and the rate an
    exact rational, so no float error moves a cut, whatever the number of shots.
    """
    rate = Fraction(fps)
    counts, elapsed, done = [], Fraction(0), 0
    for duration in durations:
        elapsed += exact(duration)
        end = round_half_up(elapsed * rate)
        counts.append(end - done)
        done = end
    return counts


def seconds_for(frames: int, fps: Fraction, *, before: Fraction = Fraction(0), done: int = 0) -> float:
    """The shortest decimal duration that puts a cut exactly ``frames`` after frame ``done``.

    ``before`` is the exact sum of the durations before it (as frame_counts reads them);
    the result keeps that sum within 5 % of a frame of the true cut point, so the shots
    after it keep their own frame counts.
    """
    target = done + frames
    ideal = Fraction(target) / fps - before
    for places in range(10):
        candidate = round(float(ideal), places)
        if candidate <= 0:
            continue
        end = (before + exact(candidate)) * fps
        if round_half_up(end) == target and abs(end - target) <= Fraction(1, 20):
            return candidate
    return float(ideal)


# -- timecode ------------------------------------------------------------------------------------------------------


def parse_timecode(text: str, fps: Fraction, *, where=None) -> int:
    """``HH:MM:SS:FF`` (``;`` before the frames for drop-frame) -> a frame number at ``fps``."""
    match = _TIMECODE.match(str(text).strip())
    base = nominal(fps)
    if not match:
        raise InputError(
            f"editorial.start '{text}' is not a timecode",
            where=where,
            hint='write HH:MM:SS:FF, e.g. "01:00:00:00" (quoted)',
        )
    h, m, s, f = (int(g) for g in match.groups())
    if m > 59 or s > 59 or f >= base:
        raise InputError(
            f"editorial.start '{text}' is not a timecode at {fps_label(fps)} fps",
            where=where,
            hint=f"minutes and seconds go to 59, frames to {base - 1}",
        )
    total_minutes = h * 60 + m
    frames = (total_minutes * 60 + s) * base + f
    if is_drop_frame(fps):
        drop = base // 15  # 2 frame numbers a minute at 29.97, 4 at 59.94, except every tenth minute
        if s == 0 and f < drop and m % 10:
            raise InputError(
                f"editorial.start '{text}' does not exist in drop-frame timecode",
                where=where,
                hint=f"frames {', '.join(f'{i:02d}' for i in range(drop))} are skipped at the start of "
                "each minute but every tenth",
            )
        frames -= drop * (total_minutes - total_minutes // 10)
    return frames


def format_timecode(frame: int, fps: Fraction) -> str:
    """A frame number -> ``HH:MM:SS:FF`` (``HH:MM:SS;FF`` in drop-frame)."""
    base = nominal(fps)
    sep = ":"
    if is_drop_frame(fps):
        drop = base // 15
        per_ten = base * 600 - drop * 9
        per_minute = base * 60 - drop
        tens, rest = divmod(frame, per_ten)
        if rest > drop:
            frame += drop * 9 * tens + drop * ((rest - drop) // per_minute)
        else:
            frame += drop * 9 * tens
        sep = ";"
    f = frame % base
    s = frame // base % 60
    m = frame // (base * 60) % 60
    h = frame // (base * 3600)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{f:02d}"


# -- the storyboard's editorial section ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Editorial:
    """``editorial:`` of a storyboard, resolved: what timelines, the animatic and codes use."""

    fps: Fraction = DEFAULT_FPS
    start: int = 0  # the first frame's number at fps (its timecode is the cut's start)
    shot_code: str | None = None  # the user's format; None: codes are not shown in place of numbers
    fps_set: bool = False  # the storyboard names a rate (else --fps or the default)

    @property
    def code_format(self) -> str:
        return self.shot_code or DEFAULT_SHOT_CODE

    @property
    def start_timecode(self) -> str:
        return format_timecode(self.start, self.fps)

    def with_fps(self, fps: Fraction | None) -> Editorial:
        """The same settings at another rate (``--fps`` wins); the start keeps its timecode."""
        if fps is None or fps == self.fps:
            return self
        start = parse_timecode(self.start_timecode.replace(";", ":"), fps) if self.start else 0
        return Editorial(fps=fps, start=start, shot_code=self.shot_code, fps_set=True)

    @classmethod
    def from_mapping(cls, data: dict | None, where=None) -> Editorial:
        """The validated ``editorial:`` mapping; ``where(key)`` gives a key's file mark for errors."""
        data = data or {}
        mark = (lambda key: where(key)) if where else (lambda key: None)
        fps = DEFAULT_FPS
        if "fps" in data:
            try:
                fps = parse_fps(data["fps"], option="editorial.fps")
            except UsageError as exc:
                raise InputError(exc.message, where=mark("fps"), hint=exc.hint) from None
        start = parse_timecode(data["start"], fps, where=mark("start")) if data.get("start") else 0
        code = data.get("shot_code")
        if code is not None:
            check_code_format(code, where=mark("shot_code"))
        return cls(fps=fps, start=start, shot_code=code, fps_set="fps" in data)


def check_code_format(fmt: str, *, where=None) -> None:
    """A shot code format may use CODE_FIELDS with plain width/padding specs, and nothing else."""
    known = ", ".join("{" + k + "}" for k in CODE_FIELDS)
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError as exc:
        raise InputError(f"editorial.shot_code '{fmt}': {exc}", where=where, hint=f"fields: {known}") from None
    fields = 0
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        fields += 1
        if name not in CODE_FIELDS or conversion:
            raise InputError(
                f"editorial.shot_code '{fmt}': unknown field {{{name}}}", where=where, hint=f"fields: {known}"
            )
        if spec and not _CODE_SPEC.match(spec):
            raise InputError(
                f"editorial.shot_code '{fmt}': format spec ':{spec}' of {{{name}}} is not allowed",
                where=where,
                hint="use a width, e.g. {shot_number:04d}",
            )
        if spec and spec.endswith("d") and CODE_FIELDS[name] is not int:
            raise InputError(
                f"editorial.shot_code '{fmt}': {{{name}}} is text, it cannot take ':{spec}'",
                where=where,
                hint="use {" + name + "} as is",
            )
    if not fields:
        raise InputError(
            f"editorial.shot_code '{fmt}' has no field, so every shot would get the same code",
            where=where,
            hint=f"use {DEFAULT_SHOT_CODE}",
        )


def shot_code(fmt: str, *, scene_index: int, shot_index: int, scene: str, shot: str) -> str:
    """The code of shot ``shot_index`` (1-based) of scene ``scene_index`` (1-based)."""
    return fmt.format(
        scene_number=scene_index * CODE_STEP,
        shot_number=shot_index * CODE_STEP,
        scene_index=scene_index,
        shot_index=shot_index,
        scene=scene,
        shot=shot,
    )
