"""Broken or hostile definition files: `campaigns validate` (what the DAG's first task runs) answers
quickly with the file and where in it, and never with a traceback.

The time bound asserted here is loose on purpose (these machines are noisy): it tells a refusal
from a hang. The figures quoted in the README come from timing the command itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from campaign_orchestrator.definitions.yaml_files import MAX_VALUES, read_yaml_doc

HANG = 20.0  # seconds: the hostile inputs took 32 s to over 60 s before they were bounded


def alias_bomb(levels: int = 9) -> str:
    """Nine levels of ten aliases each: ten values become 10^9 once expanded."""
    text = 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
    prev = "a"
    for i in range(1, levels):
        text += f"l{i}: &l{i} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
        prev = f"l{i}"
    return text


@pytest.fixture
def marketing(tmp_path: Path, repo: Path) -> Path:
    target = tmp_path / "marketing"
    shutil.copytree(repo / "marketing", target)
    return target


def validate(marketing: Path, repo: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    cmd = [sys.executable, "-m", "campaign_orchestrator.cli", "validate", "--config", str(marketing)]
    cmd += ["--contracts", str(repo / "data_contracts")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    return result, time.monotonic() - started


def refused(marketing: Path, repo: Path, *expected: str) -> str:
    result, took = validate(marketing, repo)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Traceback" not in out, out
    for text in expected:
        assert text in out, out
    assert took < HANG, f"{took:.1f}s"
    return out


def test_an_alias_bomb_is_refused_with_its_file_and_line(marketing, repo):
    (marketing / "segments" / "bomb.yaml").write_text(
        "segments:\n  - id: bomb\n    rule: {segment: x}\n" + alias_bomb()
    )
    out = refused(marketing, repo, "bomb.yaml: line", f"more than {MAX_VALUES:,} values once its aliases")
    assert out.count("bomb.yaml") == 1


def test_an_alias_that_contains_itself_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("a: &loop [1, *loop]\n")
    problems: list[str] = []
    assert read_yaml_doc(path, problems) is None
    assert problems == [f"{path}: line 1: an alias that contains itself"]


def test_a_file_nested_past_the_parsers_stack_is_refused(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    problems: list[str] = []
    assert read_yaml_doc(path, problems) is None
    assert len(problems) == 1 and "nested" in problems[0] and str(path) in problems[0]


def test_bytes_that_are_not_utf8_are_named_by_offset(marketing, repo):
    (marketing / "campaigns" / "latin1.yaml").write_bytes(b"id: caf\xe9\nchannel: push\n")
    refused(marketing, repo, "latin1.yaml: line 1, byte 7: not UTF-8", "save the file as UTF-8")


def test_a_control_character_names_its_line(marketing, repo):
    (marketing / "campaigns" / "bell.yaml").write_text("id: ok\nchannel: push\nsegment: a\x07\n")
    refused(marketing, repo, "bell.yaml: line 3: not valid YAML")


def test_an_empty_definition_file_is_an_error_not_a_campaign_gone_silently(marketing, repo):
    (marketing / "campaigns" / "winback_push.yaml").write_text("# emptied by mistake\n")
    refused(marketing, repo, "winback_push.yaml: the file is empty")


def test_an_error_in_settings_is_reported_once_not_by_every_campaign_that_uses_it(marketing, repo):
    settings = marketing / "settings.yaml"
    settings.write_text(settings.read_text().replace("kind: provider", "kind: providr"))
    out = refused(marketing, repo, "settings.yaml: destinations.braze.kind")
    assert "1 problem(s)" in out and "unknown destination" not in out


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% if first_name %}" * 300 + "x" + "{% endif %}" * 300, "{% if %} nested more than 10 deep"),
        ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "brackets nested more than 20 deep"),
        ("{{ " + " * ".join(["999999"] * 2000) + " }}", "more than 50 operators and filters in one tag"),
        ("{{ " + " * ".join(["99999"] * 20) + " }}", "a number beyond 1e+15"),
        ("{{ 123456789012345678901234567890 }}", "a number beyond 1e+15"),
        ("{{ first_name" + "|upper" * 2000 + " }}", "more than 50 operators"),
        ("Hi {{ self }}", "unknown variables ['self']"),
    ],
    ids=["300 nested ifs", "3000 parentheses", "long product", "big product", "big literal", "filters", "self"],
)
def test_a_hostile_template_is_refused_at_validate_with_file_field_and_line(marketing, repo, template, expected):
    path = marketing / "templates" / "hostile.yaml"
    path.write_text(
        "id: hostile\nchannel: push\ndefaults: {first_name: there}\ncontent:\n"
        f"  title: {template!r}\n  body: b\n".replace("\\'", "''")
    )
    refused(marketing, repo, "hostile.yaml", "content.title", expected)


def test_a_rule_nested_past_twenty_levels_is_refused_with_its_line(marketing, repo):
    rule = "{attribute: tier, eq: gold}"
    for _ in range(25):
        rule = "{not: " + rule + "}"
    (marketing / "segments" / "deep.yaml").write_text(f"id: deep\nrule: {rule}\n")
    refused(marketing, repo, "deep.yaml: rule", "nested more than 20 levels deep (line 2)")


def test_the_shipped_definitions_still_validate(repo):
    result, _took = validate(repo / "marketing", repo)
    assert result.returncode == 0 and result.stdout.startswith("ok:"), result.stderr
