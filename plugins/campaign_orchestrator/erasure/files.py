"""Step 3, the files: every archived input loses the customers' rows, every report their mentions.

Under the archive folder (each night's `raw/` inputs and `validated/` canonical files), data files
(CSV, gzipped or not; Parquet) are rewritten without the rows that name a customer's id or e-mail
as a whole token; any other text file there, and every text file under the reports folder (run
reports, previews), has each mention replaced by `[erased]`, and where it names a customer so,
their first name too (a preview quotes it; a file about no one keeps every word). Rewrites are atomic (`ingest.scrub`).
Files that are not UTF-8 text (images such as the console's screenshots) cannot name anyone in
text and are counted, not read.

Invariant: one pass over each folder per request, whatever the number of customers in it; a
repeat finds nothing left to change.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from campaign_orchestrator.ingest.scrub import Values, drop_rows, redact_text

DATA_SUFFIXES = frozenset({".csv", ".tsv", ".gz", ".parquet"})


def _files(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and not path.name.endswith(".erasing"):
            yield path


def erase_files(
    values: Values, names: Values | None, archive_dir: Path | None, reports_dir: Path | None
) -> dict[str, int]:
    """Counts per kind: archive files rewritten and rows removed, report files rewritten and the
    mentions replaced, and files that are not text (not read)."""
    counts = {"archive_files": 0, "archive_rows": 0, "report_files": 0, "report_mentions": 0, "files_not_text": 0}
    for path in _files(archive_dir) if archive_dir is not None else ():
        if path.suffix in DATA_SUFFIXES:
            removed = drop_rows(path, values)
            counts["archive_files"] += bool(removed)
            counts["archive_rows"] += removed
        else:
            _redact(path, values, names, counts, ("archive_files", "archive_rows"))
    for path in _files(reports_dir) if reports_dir is not None else ():
        if path.suffix == ".gz":
            removed = drop_rows(path, values)
            counts["report_files"] += bool(removed)
            counts["report_mentions"] += removed
        else:
            _redact(path, values, names, counts, ("report_files", "report_mentions"))
    return counts


def _redact(path: Path, values: Values, names: Values | None, counts: dict[str, int], keys: tuple[str, str]) -> None:
    try:
        text = path.read_bytes()
    except OSError:
        return
    if b"\x00" in text or not _is_utf8(text):
        counts["files_not_text"] += 1
        return
    replaced = redact_text(path, values, names)
    counts[keys[0]] += bool(replaced)
    counts[keys[1]] += replaced


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
