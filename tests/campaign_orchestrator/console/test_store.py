"""The definition store: stale versions are refused (nothing lost), invalid folders are never written,
and the refusal is the very message `campaigns validate` gives."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from campaign_orchestrator.console.store import ABSENT, Change, Conflict, DefinitionStore, Invalid, StoreError
from tests.conftest import ROOT

FILE = "campaigns/winback_push.yaml"


def test_two_edits_from_the_same_version_the_second_is_a_conflict_and_nothing_is_lost(store: DefinitionStore):
    start = store.read(FILE)
    first = start.text.replace("priority: 10", "priority: 21")  # type: ignore[union-attr]
    second = start.text.replace("holdout_percent: 10", "holdout_percent: 11")  # type: ignore[union-attr]
    assert first != start.text and second != start.text
    store.save([Change(FILE, first, start.version)], "ana", "edit", "campaigns", "winback_push")
    with pytest.raises(Conflict) as err:
        store.save([Change(FILE, second, start.version)], "eli", "edit", "campaigns", "winback_push")
    assert err.value.current.text == first  # the second editor is shown what is there now
    assert "changed by someone else" in str(err.value)
    assert store.read(FILE).text == first  # the first write stands, the second wrote nothing
    history = store.history.of("campaigns", "winback_push")  # type: ignore[union-attr]
    assert [h["changed_by"] for h in history] == ["ana"]
    assert "-priority: 10\n+priority: 21\n" in history[0]["diff"]


def test_racing_saves_from_one_version_let_exactly_one_through(store: DefinitionStore):
    start = store.read(FILE)
    outcomes: list[str] = []

    def edit(n: int) -> None:
        text = start.text.replace("priority: 10", f"priority: {30 + n}")  # type: ignore[union-attr]
        try:
            store.save([Change(FILE, text, start.version)], f"u{n}", "edit", "campaigns", "winback_push")
            outcomes.append("saved")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=edit, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 3 + ["saved"]


def test_an_invalid_definition_is_refused_with_the_message_campaigns_validate_gives(store: DefinitionStore):
    start = store.read(FILE)
    broken = start.text.replace("segment: lapsed_high_value", "segment: no_such_segment")  # type: ignore[union-attr]
    with pytest.raises(Invalid) as err:
        store.save([Change(FILE, broken, start.version)], "ana", "edit", "campaigns", "winback_push")
    assert store.read(FILE).text == start.text  # nothing was written
    # The same file, written by hand: `campaigns validate` says exactly the same.
    (store.config_dir / FILE).write_text(broken)
    cli = subprocess.run(
        [sys.executable, "-m", "campaign_orchestrator.cli", "validate", "--config", str(store.config_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 1
    for problem in err.value.problems:
        assert problem in cli.stderr
    assert f"{store.config_dir / FILE}: segment: unknown segment 'no_such_segment' (line" in err.value.problems[0]


def test_a_yaml_error_is_refused_with_its_line(store: DefinitionStore):
    start = store.read(FILE)
    with pytest.raises(Invalid) as err:
        store.save([Change(FILE, "id: winback_push\nchannel: [push\n", start.version)], "ana", "edit", "c", "w")
    assert "line" in err.value.problems[0] and FILE in err.value.problems[0]


def test_files_outside_the_folder_are_refused(store: DefinitionStore):
    for bad in ("../x.yaml", "/etc/passwd.yaml", "campaigns/x.txt"):
        with pytest.raises(StoreError, match="not a definition file"):
            store.save([Change(bad, "x: 1\n", ABSENT)], "ana", "edit", "campaigns", "x")


def test_files_the_console_does_not_touch_keep_their_comments(store: DefinitionStore):
    segments = (store.config_dir / "segments" / "customers.yaml").read_bytes()
    start = store.read(FILE)
    store.save([Change(FILE, start.text.replace("priority: 10", "priority: 22"), start.version)], "a", "edit", "c", "w")  # type: ignore[union-attr]
    assert (store.config_dir / "segments" / "customers.yaml").read_bytes() == segments
    assert not list(Path(store.config_dir / "campaigns").glob(".*.tmp"))  # no temporary file left behind
