"""The warehouse's schema revisions, run by Alembic (`env.py`, `versions/`, `script.py.mako`).

Invariant: the chain of revisions is linear, from `0001_baseline` (the schema as it stood when
revisions began, frozen in `baseline_night` and `baseline_services`) to the head the code needs;
a revision, once released, is never edited: a change to the schema is a new revision.
"""
