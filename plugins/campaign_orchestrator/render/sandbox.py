"""The Jinja2 environment marketers' templates run in, hardened past Jinja's own sandbox.

Jinja's documentation says the sandbox alone is not enough, and it has had escapes fixed as late
as 3.1.6, so the attack surface is cut at every level we control:
- parse: only a small grammar is accepted (output, conditions, filters, arithmetic, indexing);
  loops, macros, calls, attribute access, `set`, includes and blocks are refused, so a template
  cannot reach Python objects, and its running time and output grow at most linearly with its
  own length (at most MAX_SOURCE_CHARS);
- names: no globals (`range`, `lipsum`, `cycler`, `namespace` do not exist), and only variables
  the data contract allows reach the context (checked by the caller);
- filters: an allow-list of plain string/number filters plus vetted ones that format dates,
  money and numbers in the customer's locale, time zone and currency;
- operators: `**` is refused, `*` on text and `replace` cannot grow text past the field limit,
  lists (literals only) can be neither repeated nor added, and `%` formatting of text is refused
  (width tricks build huge strings); only text, numbers and dates are output;
- output: each field is capped (MAX_FIELD_CHARS) and the caller times each message.
- shape: `{% if %}` nests at most MAX_IF_NESTING deep, brackets MAX_BRACKET_NESTING, and one tag
  holds at most MAX_OPERATORS operators and filters (`check_shape`, on the lexer's tokens, before
  Jinja's recursive parser and code generator see the template);
- numbers: integers beyond MAX_INTEGER are refused, as literals and as results, so no arithmetic
  chain can make a number that takes long to compute;
- time: every operation, index and output checks the message's budget (`render_budget`), so a
  render that overruns is stopped where it is, not judged after it finished.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from campaign_orchestrator.errors import CampaignError, InvalidInput

MAX_FIELD_CHARS = 4096
MAX_SOURCE_CHARS = 20_000
MAX_IF_NESTING = 10
MAX_BRACKET_NESTING = 20
MAX_OPERATORS = 50  # operators and filters in one {{ }} or {% %}
MAX_INTEGER = 10**15  # amounts in cents of any currency fit; a chain of products does not grow past it
PLAIN_FILTERS = frozenset(
    {
        "abs",
        "capitalize",
        "default",
        "e",
        "escape",
        "float",
        "int",
        "length",
        "lower",
        "round",
        "string",
        "title",
        "trim",
        "truncate",
        "upper",
        "wordcount",
    }
)
TESTS = frozenset({"defined", "undefined", "none", "number", "string", "eq", "ne", "lt", "le", "gt", "ge", "in"})
# The grammar a message template may use; everything else is refused when it is compiled.
ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Const,
    nodes.Name,
    nodes.Filter,
    nodes.Test,
    nodes.Keyword,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
    nodes.Getitem,
    nodes.Slice,
    nodes.Tuple,
    nodes.List,
)
# Hidden context keys the vetted filters read; user templates cannot name them (not allowed variables).
LOCALE_KEY, TIMEZONE_KEY, CURRENCY_KEY = "_locale", "_timezone", "_currency"


class TemplateRefused(CampaignError, InvalidInput, ValueError):
    """A template uses something the sandbox does not allow; the message says what and where."""


class OverBudget(jinja2.exceptions.SecurityError):
    """The message took longer than its budget to render; stopped where it was."""


_budget = threading.local()


@contextmanager
def render_budget(seconds: float) -> Iterator[None]:
    """Stop any render in this block (this thread) once it has used `seconds` of CPU time."""
    previous = getattr(_budget, "deadline", None)
    _budget.deadline = time.thread_time() + seconds
    try:
        yield
    finally:
        _budget.deadline = previous


def checkpoint() -> None:
    deadline = getattr(_budget, "deadline", None)
    if deadline is not None and time.thread_time() > deadline:
        raise OverBudget("over the time budget for one message")


def _bounded(value: Any) -> Any:
    if type(value) is int and not -MAX_INTEGER <= value <= MAX_INTEGER:
        raise jinja2.exceptions.SecurityError(f"a number beyond {MAX_INTEGER:.0e}")
    return value


class MessageEnvironment(ImmutableSandboxedEnvironment):
    # Every operator passes here: each is a checkpoint for the time budget and the number bound.
    intercepted_binops = frozenset({"*", "**", "%", "+", "-", "/", "//"})
    intercepted_unops = frozenset({"-", "+"})

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        checkpoint()
        return _bounded(super().call_unop(context, operator, _bounded(arg)))

    def getitem(self, obj: Any, argument: Any) -> Any:
        checkpoint()
        return super().getitem(obj, argument)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return False  # no attribute of a profile value is needed by a message

    def is_safe_callable(self, obj: Any) -> bool:
        return False

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        checkpoint()
        _bounded(left), _bounded(right)
        if operator == "**":
            raise jinja2.exceptions.SecurityError("the ** operator is not allowed")
        if operator == "%" and isinstance(left, str):
            raise jinja2.exceptions.SecurityError("% formatting of text is not allowed")
        if (
            operator == "+"
            and isinstance(left, str)
            and isinstance(right, str)
            and len(left) + len(right) > MAX_FIELD_CHARS
        ):
            raise jinja2.exceptions.SecurityError("text longer than the field limit")
        if operator in ("*", "+") and (isinstance(left, list | tuple) or isinstance(right, list | tuple)):
            # [[x]*n]*n nests sizes the length checks below cannot see: lists only ever hold literals.
            raise jinja2.exceptions.SecurityError("lists cannot be repeated or added")
        if operator == "*":
            text, factor = (left, right) if isinstance(left, str) else (right, left)
            if isinstance(text, str) and isinstance(factor, int) and len(text) * factor > MAX_FIELD_CHARS:
                raise jinja2.exceptions.SecurityError("repetition longer than the field limit")
        return _bounded(super().call_binop(context, operator, left, right))


def _scalar_only(value: Any) -> Any:
    """Every {{ }} output: text, numbers, dates; a list or mapping printed whole is refused."""
    checkpoint()
    if isinstance(value, list | tuple | dict | set | frozenset):
        raise jinja2.exceptions.SecurityError("only text, numbers and dates can be output")
    return value


_OPEN, _CLOSE = frozenset("([{"), frozenset(")]}")
_COUNTED_NAMES = frozenset({"and", "or", "not", "in", "is", "if", "else"})


def check_shape(env: jinja2.Environment, source: str) -> None:
    """Refuse templates nested or chained past the limits, from the lexer's tokens (iterative),
    so Jinja's recursive parser and code generator never meet a template that would overflow them."""
    shape = _Shape()
    for line, kind, value in env.lex(source):
        problem = shape.feed(kind, value)
        if problem:
            raise TemplateRefused(f"line {line}: {problem}")


class _Shape:
    """Nesting of {% if %} and brackets, and operators in the current tag, as tokens pass."""

    def __init__(self) -> None:
        self.ifs = self.brackets = self.operators = 0

    def feed(self, kind: str, value: str) -> str | None:
        if kind in ("block_begin", "variable_begin"):
            self.operators = 0
        elif kind == "name":
            return self._name(value)
        elif kind == "operator":
            return self._operator(value)
        elif kind in ("integer", "float") and value.replace("_", "").isdigit() and len(value) > 16:
            return f"a number beyond {MAX_INTEGER:.0e}"
        return None

    def _name(self, value: str) -> str | None:
        if value == "if" and self.brackets == 0 and self.operators == 0:  # {% if %}, not `a if b else c`
            self.ifs += 1
            if self.ifs > MAX_IF_NESTING:
                return f"{{% if %}} nested more than {MAX_IF_NESTING} deep"
        elif value == "endif":
            self.ifs = max(0, self.ifs - 1)
        if value in _COUNTED_NAMES:
            return self._count()
        return None

    def _operator(self, value: str) -> str | None:
        if value in _OPEN:
            self.brackets += 1
            if self.brackets > MAX_BRACKET_NESTING:
                return f"brackets nested more than {MAX_BRACKET_NESTING} deep"
            return None
        if value in _CLOSE:
            self.brackets = max(0, self.brackets - 1)
            return None
        return None if value == "," else self._count()

    def _count(self) -> str | None:
        self.operators += 1
        return f"more than {MAX_OPERATORS} operators and filters in one tag" if self.operators > MAX_OPERATORS else None


def check_grammar(parsed: nodes.Template) -> None:
    """Refuse any construct outside ALLOWED_NODES, naming it and its line."""
    for node in parsed.find_all(nodes.Node):
        if not isinstance(node, ALLOWED_NODES):
            kind = type(node).__name__
            hint = {
                "For": "loops are not allowed",
                "Macro": "macros are not allowed",
                "CallBlock": "call blocks are not allowed",
                "Call": "calling functions or methods is not allowed",
                "Getattr": "attribute access (a.b) is not allowed",
                "Pow": "the ** operator is not allowed",
                "Assign": "{% set %} is not allowed",
                "AssignBlock": "{% set %} is not allowed",
            }.get(kind, f"{{% {kind.lower()} %}} and similar constructs are not allowed")
            raise TemplateRefused(f"line {getattr(node, 'lineno', '?')}: {hint}")
        if isinstance(node, nodes.Const) and type(node.value) is int and abs(node.value) > MAX_INTEGER:
            raise TemplateRefused(f"line {node.lineno}: a number beyond {MAX_INTEGER:.0e}")
        if isinstance(node, nodes.Getitem) and not (
            isinstance(node.arg, nodes.Slice) or (isinstance(node.arg, nodes.Const) and type(node.arg.value) is int)
        ):
            raise TemplateRefused(f"line {node.lineno}: only [number] and [a:b] indexing is allowed")


def _guarded_replace(value: Any, old: str, new: str, count: int | None = None) -> str:
    text = str(value)
    occurrences = text.count(str(old)) if old else len(text) + 1
    if count is not None:
        occurrences = min(occurrences, max(count, 0))
    if len(text) + occurrences * max(len(str(new)) - len(str(old)), 0) > MAX_FIELD_CHARS:
        raise jinja2.exceptions.SecurityError("replace would grow text past the field limit")
    return text.replace(str(old), str(new), -1 if count is None else count)


@functools.lru_cache(maxsize=512)
def babel_locale(tag: str | None, fallback: str = "en") -> Any:
    from babel import Locale, UnknownLocaleError

    for candidate in (tag, (tag or "").split("-")[0].split("_")[0], fallback, "en"):
        if not candidate:
            continue
        try:
            return Locale.parse(candidate.replace("-", "_"))
        except (UnknownLocaleError, ValueError):
            continue
    raise ValueError("no usable locale")


@functools.lru_cache(maxsize=1024)
def _zone(name: str | None) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name) if name else dt.UTC
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _as_datetime(value: Any) -> dt.date | dt.datetime:
    if isinstance(value, dt.datetime | dt.date):
        return value
    text = str(value).strip()
    return dt.datetime.fromisoformat(text) if len(text) > 10 else dt.date.fromisoformat(text)


def _local(context: Any, value: Any) -> dt.date | dt.datetime | None:
    if value is None or value == "":
        return None
    when = _as_datetime(value)
    if isinstance(when, dt.datetime):
        aware = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        return aware.astimezone(_zone(context.get(TIMEZONE_KEY)))
    return when


@jinja2.pass_context
def local_date(context: Any, value: Any, format: str = "medium") -> str:
    """The date of a date or UTC timestamp in the customer's time zone, in their locale's words:
    {{ last_purchase_at | local_date('long') }} -> 'November 2, 2026' or '2. November 2026'."""
    from babel.dates import format_date

    when = _local(context, value)
    if when is None:
        return ""
    day = when.date() if isinstance(when, dt.datetime) else when
    return str(format_date(day, format=format, locale=babel_locale(context.get(LOCALE_KEY))))


@jinja2.pass_context
def local_datetime(context: Any, value: Any, format: str = "medium") -> str:
    """Date and time of a UTC timestamp in the customer's time zone and locale."""
    from babel.dates import format_datetime

    when = _local(context, value)
    if when is None:
        return ""
    if not isinstance(when, dt.datetime):
        when = dt.datetime.combine(when, dt.time())
    return str(format_datetime(when, format=format, locale=babel_locale(context.get(LOCALE_KEY))))


@jinja2.pass_context
def money(context: Any, value: Any, currency: str | None = None) -> str:
    """An amount in the customer's currency (or the one given) and locale: {{ lifetime_value | money }}."""
    from babel.numbers import format_currency

    if value is None or value == "":
        return ""
    code = currency or context.get(CURRENCY_KEY) or "USD"
    return str(format_currency(float(value), str(code).upper(), locale=babel_locale(context.get(LOCALE_KEY))))


@jinja2.pass_context
def number(context: Any, value: Any, decimals: int = 0) -> str:
    """A number grouped the customer's way: 12,345 or 12.345."""
    from babel.numbers import format_decimal

    if value is None or value == "":
        return ""
    decimals = max(0, min(int(decimals), 6))
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return str(format_decimal(float(value), format=pattern, locale=babel_locale(context.get(LOCALE_KEY))))


VETTED_FILTERS = {
    "local_date": local_date,
    "local_datetime": local_datetime,
    "money": money,
    "number": number,
    "replace": _guarded_replace,
}


def build_environment(autoescape: bool = False) -> jinja2.Environment:
    env = MessageEnvironment(
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_scalar_only,
    )
    env.globals.clear()
    env.filters = {name: f for name, f in env.filters.items() if name in PLAIN_FILTERS} | VETTED_FILTERS
    env.tests = {name: t for name, t in env.tests.items() if name in TESTS}
    return env
