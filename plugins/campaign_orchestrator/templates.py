"""Message templates rendered in a hardened Jinja2 sandbox.

The sandbox alone is not enough (Jinja2's own advice), so the environment also has no
globals (no `range`, `lipsum`, `cycler`, `namespace`), only an allow-list of filters, no
`attr`/`format`/`map` style filters that reach into objects, and a cap on output size.
Variables are limited to the profile columns the data contract marks for templates.
Each template field is compiled once and rendered per customer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from campaign_orchestrator.definitions import Template

SAFE_FILTERS = {
    "capitalize",
    "default",
    "escape",
    "e",
    "float",
    "int",
    "length",
    "lower",
    "replace",
    "round",
    "string",
    "title",
    "trim",
    "truncate",
    "upper",
    "wordcount",
    "abs",
}
MAX_FIELD_CHARS = 4096
CONTEXT_VARIABLES = {"campaign_id", "customer_id", "variant"}


class RenderError(ValueError):
    pass


class _Env(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # Profile values are plain str/int/float: no attribute of them is needed by a message.
        return False

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        # Output bombs: "x" * 10**9 or 9 ** 9 ** 9 would exhaust memory or time before any limit.
        if operator == "**" and (abs(_num(right)) > 64 or abs(_num(left)) > 10**6):
            raise jinja2.exceptions.SecurityError("exponent too large")
        if operator == "*":
            sized = (
                left
                if isinstance(left, str | list | tuple)
                else right
                if isinstance(right, str | list | tuple)
                else None
            )
            factor = right if sized is left else left
            if sized is not None and isinstance(factor, int) and len(sized) * factor > MAX_FIELD_CHARS:
                raise jinja2.exceptions.SecurityError("repetition too large")
        return super().call_binop(context, operator, left, right)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def build_environment(autoescape: bool = False) -> jinja2.Environment:
    env = _Env(autoescape=autoescape, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.clear()
    env.filters = {name: f for name, f in env.filters.items() if name in SAFE_FILTERS}
    env.tests = {
        name: t for name, t in env.tests.items() if name in {"defined", "undefined", "none", "number", "string"}
    }
    return env


class CompiledTemplate:
    """A template's fields compiled once; `render` fills them for one customer."""

    def __init__(self, template: Template, allowed_variables: set[str]) -> None:
        self.template = template
        self.allowed = allowed_variables | CONTEXT_VARIABLES
        env = build_environment(autoescape=False)
        self.variables: set[str] = set()
        self._fields: dict[str, jinja2.Template] = {}
        problems: list[str] = []
        for name, source in template.content.items():
            try:
                parsed = env.parse(source)
                used = meta.find_undeclared_variables(parsed)
            except jinja2.TemplateSyntaxError as exc:  # also unknown filters and tests
                problems.append(f"content.{name}: line {exc.lineno}: {exc.message}")
                continue
            unknown = used - self.allowed
            if unknown:
                problems.append(f"content.{name}: unknown variables {sorted(unknown)}; allowed {sorted(self.allowed)}")
                continue
            self.variables |= used
            self._fields[name] = env.from_string(source)
        if problems:
            raise RenderError(f"template {template.id!r}: " + "; ".join(problems))

    def render(self, values: Mapping[str, Any]) -> dict[str, str]:
        context = {}
        for name in self.variables:
            value = values.get(name)
            if value is None or value == "":
                value = self.template.defaults.get(name, "")
            context[name] = value
        out: dict[str, str] = {}
        for name, compiled in self._fields.items():
            try:
                text = compiled.render(context)
            except jinja2.exceptions.SecurityError as exc:
                raise RenderError(f"{name}: refused by the sandbox ({exc})") from None
            except (jinja2.TemplateError, ArithmeticError, TypeError, ValueError) as exc:
                raise RenderError(f"{name}: {type(exc).__name__}: {exc}") from None
            if len(text) > MAX_FIELD_CHARS:
                raise RenderError(f"{name}: {len(text)} characters, over the limit of {MAX_FIELD_CHARS}")
            out[name] = text
        return out
