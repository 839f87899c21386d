"""The Jinja sandbox prompts are expanded in: bounded, read-only, and confined to the
project's templates.

    BoundedSandbox(ImmutableSandboxedEnvironment)
    ├── read-only: lists and dicts of the context cannot be changed (vars.update(...) is refused)
    ├── sizes: no text, list or number grows past MAX_TEXT characters / MAX_INT_BITS bits,
    │          checked *before* the value is built (``*``, ``**``, ``+``, ``~``, ``%``,
    │          ljust/center/zfill, replace, join, format, the growing filters, lipsum)
    ├── time: one expansion has BUDGET seconds (a timer on the main thread; the hooks
    │          above look at the clock too, so other threads are bounded where it calls)
    ├── depth: brackets nested more than MAX_BRACKETS deep are refused before parsing;
    │          recursion (a macro calling itself, a template including itself) ends in a
    │          located error, not a crash
    └── TemplateFiles: a template's *real* path must be inside the project's templates/
                       (itself inside the project, or a folder the user allows) or
                       shotflow's own; regular UTF-8 files of at most MAX_TEMPLATE_BYTES

Jinja's own sandbox already refuses underscores and unsafe attributes and caps ``range``
at 100 000 items; what it leaves unbounded (sizes, time, recursion) is bounded here.
Why by hand: no library bounds a Jinja render, and Jinja exposes exactly these hooks
(``call_binop``, ``call``, ``code_generator_class``) for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat as stat_module
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jinja2
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_TEXT = 100_000  # characters of one value or of one expansion's output (a prompt takes 1000)
MAX_INT_BITS = 4096
MAX_BRACKETS = 40  # Jinja's parser is recursive: ~15 frames a level
MAX_TEMPLATE_BYTES = 1024 * 1024
BUDGET = 2.0  # seconds for one prompt
_WIDTH = 10_000  # the widest field ljust/center/format/'%' may pad to


class Exhausted(SecurityError):
    """A template went over a bound (size, time, depth)."""


class _Expired(BaseException):
    """Raised by the timer into the expanding thread (a BaseException: nothing in Jinja
    or the template catches it on its way out)."""


class _Generator(CodeGenerator):
    """Jinja's code generator, with ``~`` going through the environment's bounded join, and
    the time budget checked at the start of every block: each pass of a loop ticks, so a loop
    that calls nothing (``{% for a in x %}{% for b in x %}…``) is stopped on any thread, not
    only where the main thread's real-time timer can interrupt it."""

    def blockvisit(self, nodes, frame) -> None:
        self.writeline("environment.tick()")
        super().blockvisit(nodes, frame)

    def visit_Concat(self, node, frame) -> None:
        self.write("environment.bounded_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _Generator
    intercepted_binops = frozenset(["*", "**", "+", "%", "//"])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.deadline = float("inf")
        self.watching = False  # a real-time timer watches every expansion (see watch)
        self.globals["lipsum"] = _lipsum
        for name, check in _FILTER_CHECKS.items():
            self.filters[name] = _bounded_filter(self.filters[name], check, self)

    # -- the hooks ------------------------------------------------------------------

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise Exhausted(f"the expansion took more than {BUDGET:g} s")

    def call_binop(self, context, operator, left, right):
        self.tick()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_times(left, right)
        elif operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                _check_len(len(left) + len(right))
        elif operator == "%" and isinstance(left, str):
            _check_format_widths(left, right if isinstance(right, tuple) else (right,))
        result = super().call_binop(context, operator, left, right)
        return _checked(result)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's signature
        __self.tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        return _checked(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value):
        """Jinja's sandboxed ``str.format``, with its widths checked first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text, name = value.__self__, value.__name__

        def bounded(*args, **kwargs):
            self.tick()
            _check_str_method(text, name, args, kwargs)
            return _checked(wrapped(*args, **kwargs))

        return bounded

    def bounded_join(self, items) -> str:
        self.tick()
        parts = [str(item) for item in items]
        _check_len(sum(map(len, parts)))
        return "".join(parts)

    # -- running one expansion ------------------------------------------------------------

    def render(self, template, context: dict) -> str:
        """``template.render(context)``, within the size and time budget: Jinja's own render
        (its root function, its traceback rewriting), the output measured as it is made."""
        with _timer(self):
            out: list[str] = []
            size = 0
            try:
                for piece in template.root_render_func(template.new_context(context)):
                    size += len(piece)
                    if size > MAX_TEXT:
                        break
                    out.append(piece)
            except Exception:
                self.handle_exception()  # as Template.render: the traceback told in template lines
            if size > MAX_TEXT:
                raise Exhausted(f"the expansion is longer than {MAX_TEXT} characters")
            return "".join(out)

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        """Many expansions in a row on the main thread: one real-time timer for all of them,
        looking at the running expansion's deadline every quarter second, rather than one
        armed and disarmed per prompt (four system calls each, 8 % of expanding 1000 shots).
        Elsewhere (another thread, no setitimer) the blocks' ticks are the budget."""
        if self.watching or not _alarm_possible():
            yield
            return

        def on_alarm(signum, frame):
            if time.monotonic() > self.deadline:
                raise _Expired()

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.25, 0.25)
        self.watching = True
        try:
            yield
        except _Expired:  # it landed as an expansion that ran out was leaving its timer: out all the same
            raise Exhausted(f"the expansion took more than {BUDGET:g} s") from None
        finally:
            self.watching = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        """Jinja's compile, refusing what would overflow the parser first."""
        if isinstance(source, str):
            check_brackets(source)
        with _timer(self):
            try:
                return super().compile(source, name, filename, raw, defer_init)
            except (RecursionError, MemoryError) as exc:
                raise Exhausted("the template nests too deeply (brackets, blocks or macros)") from exc
            except SyntaxError as exc:  # Python's limits on the generated code (e.g. 20 nested loops)
                raise Exhausted(f"the template nests too deeply ({exc.msg})") from exc


# -- the time budget ---------------------------------------------------------------------------


class _timer:
    """The deadline of one expansion (every block ticks against it); on the main thread also a
    real-time timer, a second net for a single Python-level operation that runs long."""

    def __init__(self, env: BoundedSandbox):
        self.env = env
        self.outer = env.deadline == float("inf")  # an include compiled while rendering: the render's timer runs
        self.alarm = self.outer and not env.watching and _alarm_possible()  # watching: its timer serves

    def __enter__(self):
        if not self.outer:
            return self
        self.env.deadline = time.monotonic() + BUDGET
        if self.alarm:
            self.previous = signal.signal(signal.SIGALRM, _on_alarm)
            signal.setitimer(signal.ITIMER_REAL, BUDGET + 0.05)
        return self

    def __exit__(self, kind, exc, tb):
        if not self.outer:
            return False
        self.env.deadline = float("inf")
        if self.alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        if kind is _Expired:
            error = Exhausted(f"the expansion took more than {BUDGET:g} s")
            error.lineno = _template_line(tb)
            raise error from None
        return False


def _template_line(tb) -> int | None:
    """The template line a traceback of compiled template code was at (Jinja's debug_info)."""
    import traceback

    line = None
    for frame, lineno in traceback.walk_tb(tb):
        info = frame.f_globals.get("debug_info")
        if isinstance(info, str) and "environment" in frame.f_globals:
            pairs = [tuple(map(int, pair.split("="))) for pair in info.split("&") if "=" in pair]
            for template_line, code_line in reversed(pairs):
                if code_line <= lineno:
                    line = template_line
                    break
    return line


def _on_alarm(signum, frame):
    raise _Expired()


def _alarm_possible() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


# -- the checks -------------------------------------------------------------------------------


def _check_len(n: int) -> None:
    if n > MAX_TEXT:
        raise Exhausted(f"the template builds a value of {n} items or characters (at most {MAX_TEXT})")


def _checked(value):
    if isinstance(value, (str, list, tuple, dict, bytes)):
        _check_len(len(value))
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise Exhausted(f"the template builds a number of more than {MAX_INT_BITS} bits")
    return value


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_power(base, exponent) -> None:
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
        if exponent * abs(base).bit_length() > MAX_INT_BITS:
            raise Exhausted(f"{base} ** {exponent} is too large a number")
    elif (
        isinstance(base, (int, float))
        and isinstance(exponent, (int, float))
        and abs(exponent) > 10_000
        and abs(base) not in (0, 1)
    ):
        raise Exhausted(f"{base} ** {exponent} is too large a number")


def _check_times(left, right) -> None:
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise Exhausted("the template multiplies too large numbers")
        return
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and _is_int(n):
            _check_len(len(seq) * max(n, 0))


_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_format_widths(fmt: str, args) -> None:
    stars = False
    for width, precision in _PERCENT.findall(fmt):
        for number in (width, precision):
            if number == "*":
                stars = True
            elif number and int(number) > _WIDTH:
                raise Exhausted(f"a format width of {number} (at most {_WIDTH})")
    if stars and any(_is_int(a) and abs(a) > _WIDTH for a in args):
        raise Exhausted(f"a format width over {_WIDTH}")


_BRACE_NUMBER = re.compile(r"\d{6,}")


def _check_str_method(text: str, name: str, args, kwargs) -> None:
    if name in ("ljust", "rjust", "center", "zfill"):
        if args and _is_int(args[0]) and args[0] > _WIDTH:
            raise Exhausted(f"{name}({args[0]}) pads too wide (at most {_WIDTH})")
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if _is_int(size):
            _check_len(len(text) + text.count("\t") * max(size, 0))
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        old, new = args[0], args[1]
        hits = text.count(old) if old else len(text) + 1
        _check_len(len(text) + hits * max(len(new) - len(old), 0))
    elif name == "join" and args:
        items = args[0]
        if isinstance(items, (list, tuple)):
            _check_len(sum(len(i) for i in items if isinstance(i, str)) + len(text) * len(items))
    elif name in ("format", "format_map"):
        if _BRACE_NUMBER.search(text):
            raise Exhausted(f"a format width in {text[:40]!r} is too large (at most {_WIDTH})")
        values = list(args) + list(kwargs.values())
        if name == "format_map" and args and isinstance(args[0], dict):
            values = list(args[0].values())
        if any(_is_int(v) and abs(v) > _WIDTH for v in values) and ":" in text:
            raise Exhausted(f"a format width over {_WIDTH}")


def check_brackets(source: str) -> None:
    depth = deepest = 0
    for ch in source:
        if ch in "([{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif ch in ")]}" and depth:
            depth -= 1
    if deepest > MAX_BRACKETS:
        raise Exhausted(f"brackets are nested {deepest} deep (at most {MAX_BRACKETS})")


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002 - Jinja's names
    from jinja2.utils import generate_lorem_ipsum

    if not all(_is_int(v) for v in (n, min, max)) or n > 20 or max > 200 or min > max:
        raise Exhausted("lipsum() takes at most 20 paragraphs of at most 200 words")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


def _width_arg(index: int):
    def check(args, kwargs) -> None:
        width = args[index] if len(args) > index else kwargs.get("width")
        if isinstance(width, str):
            _check_len(len(width) * (1 + (args[0].count("\n") if args and isinstance(args[0], str) else 0)))
        elif _is_int(width) and width > _WIDTH:
            raise Exhausted(f"a width of {width} (at most {_WIDTH})")

    return check


def _format_filter(args, kwargs) -> None:
    if args and isinstance(args[0], str):
        _check_format_widths(args[0], tuple(args[1:]) + tuple(kwargs.values()))


def _replace_filter(args, kwargs) -> None:
    if len(args) >= 3 and all(isinstance(a, str) for a in args[:3]):
        _check_str_method(args[0], "replace", args[1:3], {})


def _join_filter(args, kwargs) -> None:
    if args and isinstance(args[0], (list, tuple)):
        sep = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        _check_len(sum(len(str(i)) for i in args[0]) + len(sep) * len(args[0]))


_FILTER_CHECKS = {
    "center": _width_arg(1),
    "indent": _width_arg(1),
    "format": _format_filter,
    "replace": _replace_filter,
    "join": _join_filter,
}


def _bounded_filter(fn, check, env: BoundedSandbox):
    """A filter with a check of its arguments before it runs and of its result after."""
    from jinja2.utils import _PassArg

    passed = _PassArg.from_obj(fn)

    def bounded(*args, **kwargs):
        env.tick()
        check(args[1:] if passed is not None else args, kwargs)
        return _checked(fn(*args, **kwargs))

    if passed is not None:
        bounded.jinja_pass_arg = passed  # type: ignore[attr-defined]
    return bounded


# -- where templates come from ---------------------------------------------------------------


class TemplateRefused(jinja2.TemplateError):
    """A template file the trust model refuses (outside the templates folders, not a file, not UTF-8)."""


class TemplateFiles(jinja2.BaseLoader):
    """Templates by name from ``folders`` in order (the project's templates/, then the
    built-in ones); a name resolves to its real path, which must be inside the real path
    of one of ``trusted`` (symlinks cannot lead out)."""

    def __init__(self, folders: list[Path], trusted: list[Path], refused: dict[Path, str] | None = None):
        self.folders = folders
        self.trusted = [os.path.realpath(p) for p in trusted]
        self.refused = refused or {}  # folder -> why it may not be read

    def get_source(self, environment, template: str):
        from jinja2.loaders import split_template_path

        from .trust import inside

        if "\0" in template or len(template) > 1000:
            raise TemplateRefused(f"template name {template[:60]!r} is not a file name")
        pieces = split_template_path(template)
        for folder in self.folders:
            candidate = os.path.join(folder, *pieces)
            if not os.path.lexists(candidate):
                continue
            if folder in self.refused:
                raise TemplateRefused(f"template '{template}': {self.refused[folder]}")
            real = os.path.realpath(candidate)
            if not any(inside(real, root) for root in self.trusted):
                raise TemplateRefused(
                    f"template '{template}' leads to {real}, outside the templates folders "
                    "(a symbolic link?); shotflow reads no template from there"
                )
            try:
                st = os.stat(real)
            except OSError as exc:
                raise TemplateRefused(f"template '{template}' cannot be read: {exc.strerror or exc}") from None
            if not stat_module.S_ISREG(st.st_mode):
                raise TemplateRefused(f"template '{template}' is not a regular file")
            if st.st_size > MAX_TEMPLATE_BYTES:
                raise TemplateRefused(f"template '{template}' is {st.st_size} bytes (at most {MAX_TEMPLATE_BYTES})")
            with open(real, "rb") as f:
                raw = f.read(MAX_TEMPLATE_BYTES + 1)
            try:
                source = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TemplateRefused(f"template '{template}' is not UTF-8 text (byte {exc.start})") from None
            check_brackets(source)
            return source, real, lambda: True
        raise jinja2.TemplateNotFound(template)

    def list_templates(self) -> list[str]:
        found = set()
        for folder in self.folders:
            if folder in self.refused:
                continue
            for dirpath, _, files in os.walk(folder):
                for name in files:
                    rel = os.path.relpath(os.path.join(dirpath, name), folder)
                    found.add(rel.replace(os.sep, "/"))
        return sorted(found)
