"""Server-side template injection: a corpus of known payloads must fail safely.

"Safely" is checked, not assumed: every payload is compiled and rendered with a Python audit
hook recording file opens, process starts, imports and code execution while it renders, next to a
secret file whose content must never appear. A payload may be refused when compiled, fail when
rendered, or render harmless text, and nothing else.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campaign_orchestrator.definitions.templates import Template
from campaign_orchestrator.render.compiled import CompiledTemplate, RenderError, RenderPolicy

VARIABLES = {"first_name", "lifetime_value", "last_purchase_at", "tier"}
# Names templates commonly reach for in SSTI write-ups; allowing them as variables makes sure
# it is the sandbox, not the unknown-variable check, that stops the payload.
ATTACK_NAMES = {
    "cycler",
    "joiner",
    "lipsum",
    "range",
    "namespace",
    "dict",
    "self",
    "config",
    "request",
    "url_for",
    "get_flashed_messages",
    "os",
}
SECRET = "s3cr3t-do-not-leak"
WATCHED_EVENTS = ("open", "os.", "subprocess.", "exec", "compile", "import", "socket.", "shutil.", "ctypes.")
PYTHON_REPRS = ("<class", "<function", "<module", "<built-in", "<bound", "<method", "<frame", "__builtins__")

PAYLOADS = [
    # attribute walks to Python internals
    "{{ first_name.__class__ }}",
    "{{ first_name.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__()[40]('{secret}').read() }}",
    "{{ ().__class__.__bases__[0].__subclasses__() }}",
    "{{ (1, 2).__class__ }}",
    "{{ first_name.__ｃｌａｓｓ__ }}",  # noqa: RUF001 - fullwidth letters on purpose
    "{{ first_name['__class__'] }}",
    "{{ first_name['__cla' ~ 'ss__'] }}",
    "{{ first_name[first_name] }}",
    # filters that reach attributes
    "{{ first_name|attr('__class__') }}",
    "{{ first_name|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ (first_name|attr('__class__')).mro() }}",
    "{{ first_name|map(attribute='__class__')|list }}",
    "{{ first_name|sum(attribute='__class__') }}",
    "{{ first_name|sort(attribute='__class__') }}",
    "{{ first_name|groupby('__class__') }}",
    "{{ first_name|selectattr('__class__') }}",
    "{{ first_name|e|string|attr('__html__') }}",
    "{{ first_name|default(first_name.__class__) }}",
    # Jinja globals and framework objects
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ lipsum() }}",
    "{{ namespace() }}",
    "{{ range(10)|list }}",
    "{{ range(999999999) }}",
    "{{ dict(a=1) }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__.__builtins__.open('{secret}').read() }}",
    "{{ url_for.__globals__['__builtins__'] }}",
    "{{ get_flashed_messages.__globals__ }}",
    "{{ os.popen('id').read() }}",
    # method calls and format strings
    "{{ first_name.upper() }}",
    "{{ '{0.__class__}'.format(first_name) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ first_name|format('%s') }}",
    "{{ '%s' % first_name }}",
    "{{ '%999999999s' % 1 }}",
    "{{ '%(a)s' % {'a': first_name} }}",
    "{{ (first_name|string).__len__() }}",
    "{{ first_name|attr('upper')() }}",
    # statements that load, define or loop
    "{% import 'os' as os %}{{ os }}",
    "{% from 'x' import y %}",
    "{% include '{secret}' %}",
    "{% extends '{secret}' %}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{% for a in 'x' * 4000 %}{% for b in 'x' * 4000 %}{{ a }}{% endfor %}{% endfor %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% call m() %}{% endcall %}",
    "{% set x = first_name.__class__ %}{{ x }}",
    "{% set a = 'x' * 4000 %}{% set a = a ~ a %}{% set a = a ~ a %}{{ a ~ a }}",
    "{% with a = first_name %}{{ a.__class__ }}{% endwith %}",
    "{% filter upper %}{{ first_name }}{% endfilter %}",
    "{% autoescape false %}{{ first_name }}{% endautoescape %}",
    "{% block b %}{{ first_name }}{% endblock %}",
    # output and time bombs
    "{{ 'x' * 100000000 }}",
    "{{ first_name * 999999999 }}",
    "{{ [1] * 999999999 }}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ 10 ** 100 ** 100 }}",
    "{{ ('x' * 4000) + ('x' * 4000) }}",
    "{{ [['x' * 4096] * 4096] * 4096 }}",
    "{% if first_name == 'zz' %}{{ [['x' * 4096] * 4096] * 4096 }}{% endif %}",
    "{{ (['x' * 4096] + ['x' * 4096]) * 2 }}",
    "{{ ['x' * 4096, 'x' * 4096, 'x' * 4096] }}",
    "{{ ('x' * 4096) ~ ('x' * 4096) ~ ('x' * 4096) }}",
    "{{ [first_name] * 2 }}",
    "{{ first_name|replace('', 'x' * 4000) }}",
    "{{ 'a'|replace('a', 'aaaa')|replace('a', 'aaaa')|replace('a', 'aaaa')|replace('a', 'aaaa')"
    "|replace('a', 'aaaa')|replace('a', 'aaaa')|replace('a', 'aaaa') }}",
    "{{ 'x'|center(999999999) }}",
    "{{ 'x'|indent(999999999) }}",
    "{{ 'x'|wordwrap(1) }}",
    "{{ first_name|batch(999999999)|list }}",
    "{{ first_name|safe }}",
    "{{ first_name|xmlattr }}",
    "{{ first_name|pprint }}",
    "{{ first_name|tojson }}",
    "{{ first_name|urlize }}",
    # vetted filters fed hostile arguments
    "{{ lifetime_value|money('{0.__class__}') }}",
    "{{ lifetime_value|money('../../etc/passwd') }}",
    "{{ last_purchase_at|local_date('{0.__class__}') }}",
    "{{ first_name|local_date }}",
    "{{ lifetime_value|number(999999999) }}",
    "{{ first_name|truncate(-1) }}",
    "{{ first_name|int(base=999) }}",
]


class Audit:
    """Records security-relevant audit events while armed (audit hooks cannot be removed)."""

    def __init__(self) -> None:
        self.armed = False
        self.events: list[str] = []

    def __call__(self, event: str, args: Any) -> None:
        if self.armed and event.startswith(WATCHED_EVENTS):
            self.events.append(event)


_AUDIT = Audit()
sys.addaudithook(_AUDIT)


@pytest.fixture
def audit() -> Iterator[Audit]:
    _AUDIT.events.clear()
    yield _AUDIT
    _AUDIT.armed = False


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "secret.txt"
    path.write_text(SECRET)
    return path


VALUES = {
    "first_name": "Ana",
    "lifetime_value": 1234.5,
    "last_purchase_at": dt.datetime(2026, 11, 1, 12, 0),
    "tier": "gold",
    "locale": "en-US",
    "currency": "USD",
    "timezone": "America/New_York",
}


def push(title: str) -> Template:
    return Template(id="t", channel="push", content={"title": title, "body": "b"})


def test_a_nested_list_bomb_is_refused_for_the_one_customer_it_targets():
    """Lint renders with defaults and never takes this branch; the render for 'zz' must refuse it."""
    t = CompiledTemplate(push("{% if first_name == 'zz' %}{{ [['x' * 4096] * 4096] * 4096 }}{% endif %}"), VARIABLES)
    assert t.render(VALUES)["title"] == ""
    with pytest.raises(RenderError, match="lists cannot be repeated"):
        t.render({**VALUES, "first_name": "zz"})


def _warm_up() -> None:
    # Babel loads locale data from files on first use; load it before the audit is armed.
    warm = CompiledTemplate(
        push("{{ lifetime_value|money }} {{ last_purchase_at|local_date }} {{ lifetime_value|number(2) }}"), VARIABLES
    )
    warm.render(VALUES)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_payloads_fail_safely(payload: str, secret_file: Path, audit: Audit) -> None:
    source = payload.replace("{secret}", str(secret_file))
    policy = RenderPolicy(limits={"push": {}})  # the field cap, not the title limit, is under test
    try:
        template = CompiledTemplate(push(source), VARIABLES | ATTACK_NAMES, policy)
    except RenderError:
        return  # refused when compiled: the usual outcome
    _warm_up()
    audit.armed = True
    started = time.perf_counter()
    try:
        out = template.render(VALUES)
    except RenderError:
        out = None
    finally:
        audit.armed = False
    elapsed = time.perf_counter() - started
    assert audit.events == [], f"the payload triggered {audit.events}"
    assert elapsed < 5, "rendering is bounded"  # a hang, not a speed target
    if out is not None:
        title = out["title"]
        assert SECRET not in title
        assert len(title) <= 4096
        assert not any(r in title for r in PYTHON_REPRS), title[:200]


def test_the_audit_hook_would_see_a_file_read(secret_file: Path, audit: Audit) -> None:
    """The check above can fail: reading a file while armed is recorded."""
    audit.armed = True
    secret_file.read_text()
    audit.armed = False
    assert "open" in audit.events


def test_refusals_name_the_construct_and_line():
    cases = {
        "Hi\n{{ first_name.__class__ }}": "line 2: attribute access",
        "{% for x in first_name %}{{ x }}{% endfor %}": "loops are not allowed",
        "{{ first_name.upper() }}": "calling functions or methods",
        "{{ 2 ** 8 }}": r"the \*\* operator",
        "{% set a = 1 %}": "set",
        "{{ first_name['x'] }}": r"only \[number\] and \[a:b\] indexing",
        "{{ first_name|attr('x') }}": "No filter named 'attr'",
        "{% include 'x' %}": "include",
    }
    for source, expected in cases.items():
        with pytest.raises(RenderError, match=expected):
            CompiledTemplate(push(source), VARIABLES)


def test_harmless_text_that_looks_like_an_attack_renders_as_text():
    t = CompiledTemplate(push("{% raw %}{{ x.__class__ }}{% endraw %} and {{ '__class__' }}"), VARIABLES)
    assert t.render(VALUES)["title"] == "{{ x.__class__ }} and __class__"


def test_indexing_and_slicing_text_is_allowed():
    t = CompiledTemplate(push("{{ first_name[0] }}. {{ first_name[:2]|upper }}"), VARIABLES)
    assert t.render(VALUES)["title"] == "A. AN"


def test_a_message_over_the_time_limit_is_a_render_error():
    slow = RenderPolicy(max_message_ms=0.000001)
    t = CompiledTemplate(push("{{ first_name|title }}"), VARIABLES, slow)
    with pytest.raises(RenderError, match="over the limit of"):
        t.render(VALUES)


def test_error_messages_do_not_quote_the_customers_values():
    t = CompiledTemplate(push("{{ first_name|int }}"), VARIABLES)
    assert t.render({"first_name": "12"})["title"] == "12"
    t = CompiledTemplate(push("{{ first_name|local_date }}"), VARIABLES)
    with pytest.raises(RenderError) as caught:
        t.render({"first_name": "Zebedee-Private"})
    assert "Zebedee" not in str(caught.value) and "title" in str(caught.value)
