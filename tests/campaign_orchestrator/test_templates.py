from __future__ import annotations

import pytest

from campaign_orchestrator.definitions import Template
from campaign_orchestrator.templates import CompiledTemplate, RenderError

VARS = {"first_name", "tier", "country", "lifetime_value"}


def push(title: str, body: str = "Hello", **defaults: str) -> Template:
    return Template(id="t", channel="push", defaults=defaults, content={"title": title, "body": body})


def test_missing_values_use_declared_defaults():
    t = CompiledTemplate(push("Hi {{ first_name }}", first_name="there"), VARS)
    assert t.render({"first_name": None})["title"] == "Hi there"
    assert t.render({"first_name": ""})["title"] == "Hi there"
    assert t.render({"first_name": "Ana"})["title"] == "Hi Ana"


def test_unknown_variables_are_refused_at_compile_time():
    with pytest.raises(RenderError, match=r"content.title: unknown variables \['email'\]"):
        CompiledTemplate(push("Hi {{ email }}"), VARS)


def test_syntax_errors_name_the_field_and_line():
    with pytest.raises(RenderError, match=r"content\.body: line 1"):
        CompiledTemplate(push("ok", body="{{ first_name "), VARS)


@pytest.mark.parametrize(
    "payload",
    [
        "{{ first_name.__class__ }}",
        "{{ first_name.__class__.__mro__[1].__subclasses__() }}",
        "{{ first_name|attr('__class__') }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ range(10)|list }}",
        "{{ namespace() }}",
        "{{ 'x' * 100000000 }}",
        "{{ 9 ** 9 ** 9 }}",
        "{{ first_name['__class__'] }}",
        "{{ '{0.__class__}'.format(first_name) }}",
        "{{ self.__init__.__globals__ }}",
        "{{ config }}",
        "{{ request }}",
    ],
)
def test_injection_payloads_fail_safely(payload: str):
    variables = VARS | {"cycler", "lipsum", "range", "namespace", "self", "config", "request"}
    try:
        t = CompiledTemplate(push(payload), variables)
        out = t.render({"first_name": "Ana"})
    except RenderError:
        return
    # If it rendered at all, it rendered nothing of Python's internals.
    assert "class" not in out["title"] and "uid=" not in out["title"] and len(out["title"]) < 100


def test_output_size_is_capped():
    t = CompiledTemplate(push("{{ first_name }}"), VARS)
    with pytest.raises(RenderError, match="over the limit"):
        t.render({"first_name": "x" * 5000})
