"""`campaigns-dev db-revision` adds a revision after the newest, numbered and named as the chain wants."""

from __future__ import annotations

import shutil

from campaign_devtools.db_revision import MAX_ID, new_revision, revision_id
from campaign_orchestrator.warehouse import migrate


def test_a_revision_id_is_the_next_number_and_the_message_short_enough_for_the_version_table():
    assert revision_id("Events by day!", 2) == "0003_events_by_day"
    assert len(revision_id("a very long message about many things at once", 11)) <= MAX_ID
    assert revision_id("???", 0) == "0001_change"


def test_a_new_revision_follows_the_head_and_autogenerate_finds_nothing_when_tables_py_is_at_head(tmp_path):
    location = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, location, ignore=shutil.ignore_patterns("__pycache__"))
    n = len(migrate.revisions())

    path = new_revision("events by day", autogenerate=True, location=location)

    assert path == location / "versions" / f"{n + 1:04d}_events_by_day.py"
    text = path.read_text()
    assert f'revision: str = "{n + 1:04d}_events_by_day"' in text
    assert f'down_revision: str | None = "{migrate.head()}"' in text
    assert "op." not in text, "tables.py differs from the revisions: add the revision that makes them equal"
