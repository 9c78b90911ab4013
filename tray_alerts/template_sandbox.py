"""Jinja2's immutable sandbox with bounds: a template renders within a time limit and an output cap, and the
operations that build huge text in one step (`'x' * n`, `'%999999999s'`, `center(10**9)`, huge powers) are
refused; no macros, no namespace objects. Jinja2 is imported only when a template is used."""
from __future__ import annotations

import functools
import re
import sys
import time
from types import FrameType
from typing import Any, Callable, Mapping

MAX_RENDERED = 100_000  # characters of one rendered template: above any channel's own text
MAX_REPEAT = 10_000  # the longest text or list `*` may build
MAX_WIDTH = 10_000  # the widest padding or format width
MAX_INT_BITS = 256  # the largest number `*` or `**` may make
TIME_LIMIT = 1.0  # seconds one rendering may take
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_WIDTH_FILTERS = {"center": 0, "indent": 0}  # filter name -> index of its width among the arguments after the value
_PRINTF_WIDTH = re.compile(r"%[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_FIELD = re.compile(r"\{[^{}]*:([^{}]*)\}|\{[^{}]*\{")
_NUMBER = re.compile(r"\d+")


class TemplateTooCostly(Exception):
    """A rendering that went past a bound (time, output, width, repetition)."""


def environment() -> Any:
    """The bounded sandbox, built on first use."""
    return _environment()


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    """One BoundedSandbox for the process."""
    return _bounded_sandbox_class()(autoescape=False, trim_blocks=True, lstrip_blocks=True,
                                    keep_trailing_newline=False)


def render(template: Any, values: Mapping[str, Any]) -> str:
    """The template rendered within TIME_LIMIT, stopped at MAX_RENDERED characters (then marked with …)."""
    pieces: list[str] = []
    size = 0
    with _time_limit(TIME_LIMIT):
        for piece in template.generate(values):
            pieces.append(piece)
            size += len(piece)
            if size > MAX_RENDERED:
                break
    text = "".join(pieces)
    return text if len(text) <= MAX_RENDERED else text[:MAX_RENDERED - 1] + "…"


class _time_limit:
    """Raise TemplateTooCostly in this thread's Python code once `seconds` have passed (a trace function, restored
    afterwards: a template's loops run as Python, so they are stopped where they are)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._previous: Any = None
        self._deadline = 0.0

    def __enter__(self) -> None:
        self._deadline = time.monotonic() + self.seconds
        self._previous = sys.gettrace()
        sys.settrace(self._trace)

    def __exit__(self, *exc: object) -> None:
        sys.settrace(self._previous)

    def _trace(self, frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        if time.monotonic() > self._deadline:
            raise TemplateTooCostly(f"took longer than {self.seconds:g} s")
        return self._trace


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `*`, `**` and `%` that would build huge text, lists or numbers in one step."""
    if operator == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, (str, list, tuple)) and _integer(count) and len(sequence) * count > MAX_REPEAT:
                raise TemplateTooCostly(f"repeating text or a list past {MAX_REPEAT} items")
        if _integer(left) and _integer(right) and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
            raise TemplateTooCostly("number too large")
    elif operator == "**" and _number(left) and _number(right) and abs(left) > 1:
        if abs(right) > MAX_INT_BITS or (_integer(left) and abs(left).bit_length() * abs(right) > MAX_INT_BITS):
            raise TemplateTooCostly(f"power too large: {left} ** {right}")
    elif operator == "%" and isinstance(left, str):
        check_printf(left)


def check_printf(text: str) -> None:
    """Refuse a printf-style format whose width or precision is huge or taken from an argument (`*`)."""
    for match in _PRINTF_WIDTH.finditer(text):
        for value in match.groups():
            if value == "*" or (value is not None and int(value) > MAX_WIDTH):
                raise TemplateTooCostly(f"format width past {MAX_WIDTH}")


def check_format(text: str) -> None:
    """Refuse a str.format string whose field width is huge or nested (`{0:{1}}`)."""
    for match in _FORMAT_FIELD.finditer(text):
        spec = match.group(1)
        if spec is None or any(int(number) > MAX_WIDTH for number in _NUMBER.findall(spec)):
            raise TemplateTooCostly(f"format width past {MAX_WIDTH}")


def check_call(target: Any, args: tuple, kwargs: Mapping[str, Any]) -> None:
    """Refuse str methods asked for huge padding or formats, and replacements that would grow text hugely."""
    owner, name = getattr(target, "__self__", None), getattr(target, "__name__", "")
    if not isinstance(owner, str):
        return
    if name in _WIDTH_METHODS and any(_integer(value) and value > MAX_WIDTH for value in [*args, *kwargs.values()]):
        raise TemplateTooCostly(f"width past {MAX_WIDTH}")
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        check_replace(owner, args[0], args[1])


def check_replace(text: str, old: str, new: str) -> None:
    """Refuse a replace that would make the text longer than MAX_RENDERED."""
    if len(new) > len(old) and (len(text) // max(len(old), 1) + 1) * len(new) > MAX_RENDERED:
        raise TemplateTooCostly(f"replacing would make text past {MAX_RENDERED} characters")


def _bounded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that checks its size arguments first (keeping Jinja2's pass-context markers)."""

    @functools.wraps(original)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        values = [value for value in args if not _is_jinja_object(value)]
        rest = values[1:]  # after the filtered value
        if name in _WIDTH_FILTERS:
            width = kwargs.get("width", rest[_WIDTH_FILTERS[name]] if len(rest) > _WIDTH_FILTERS[name] else 0)
            if _integer(width) and width > MAX_WIDTH or isinstance(width, str) and len(width) > MAX_WIDTH:
                raise TemplateTooCostly(f"width past {MAX_WIDTH}")
        elif name == "format" and values and isinstance(values[0], str):
            check_printf(values[0])
        elif name == "replace" and len(rest) >= 2 and all(isinstance(value, str) for value in values[:3]):
            check_replace(values[0], rest[0], rest[1])
        return original(*args, **kwargs)

    return bounded


def _is_jinja_object(value: Any) -> bool:
    """Whether a filter argument is one Jinja2 passes itself (environment, context, eval context)."""
    return type(value).__module__.startswith("jinja2.")


def _bounded_sandbox_class() -> type:
    """BoundedSandbox: ImmutableSandboxedEnvironment, strict about undefined names, with the checks above."""
    from jinja2 import StrictUndefined, nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        """The sandbox with bounds on size, time and what a template may define."""

        intercepted_binops = frozenset(["*", "**", "%"])

        def __init__(self, **options: Any):
            super().__init__(undefined=StrictUndefined, **options)
            for name in ("namespace", "lipsum", "cycler", "joiner"):  # state across a loop, or text for its own sake
                self.globals.pop(name, None)
            self.filters.update({name: _bounded_filter(name, self.filters[name])
                                 for name in (*_WIDTH_FILTERS, "format", "replace") if name in self.filters})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            """`*`, `**` and `%`, refused past the bounds."""
            check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's names)
            """A call, refused when it would pad or format hugely."""
            check_call(__obj, args, kwargs)
            return super().call(__context, __obj, *args, **kwargs)

        def wrap_str_format(self, value: Any) -> Any:
            """str.format / format_map, refused for a huge or nested field width (checked when looked up)."""
            wrapped = super().wrap_str_format(value)
            if wrapped is not None:
                check_format(value.__self__)
            return wrapped

        def _parse(self, source: str, name: str | None, filename: str | None) -> Any:
            """Parse, refusing macros, call blocks, imports and includes (a template is one text, not a program)."""
            tree = super()._parse(source, name, filename)
            for kind in (nodes.Macro, nodes.CallBlock, nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends):
                for found in tree.find_all(kind):
                    raise SecurityError(f"{type(found).__name__.lower()} is not allowed in a message template")
            return tree

    return BoundedSandbox


def _integer(value: Any) -> bool:
    """Whether a value is an int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    """Whether a value is an int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
