"""The files step: archived inputs lose whole rows (quoted newlines, gzip and Parquet included),
reports lose the mentions (and the first name where they name the customer), values match only as
whole tokens, files that name no one are left untouched and images are not read."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from campaign_orchestrator.erasure.files import erase_files
from campaign_orchestrator.ingest.scrub import Values, drop_rows, redact_text


def values(*words: str) -> Values:
    found = Values.of(list(words))
    assert found is not None
    return found


def test_a_value_matches_only_as_a_whole_token() -> None:
    pattern = values("C0000137", "ana@example.com").pattern
    assert pattern.search("customer C0000137.") and pattern.search('{"id": "c0000137"}')
    assert pattern.search("ANA@example.com,x") and pattern.search("mail: ana@example.com.")
    for other in ("C00001370", "XC0000137", "C0000137-2", "hana@example.com", "ana@example.com.au", "c0000137@x.org"):
        assert not pattern.search(other), other


def test_a_csv_loses_whole_records_even_across_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text('customer_id,note\nC1,"two\nlines, C2 here"\nC2,plain\nC3,"keeps ""C22"""\n')
    assert drop_rows(path, values("C2")) == 2
    assert path.read_text() == 'customer_id,note\nC3,"keeps ""C22"""\n'
    assert not list(tmp_path.glob(".*erasing"))


def test_a_file_naming_no_one_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(b"customer_id,name\nC1,open\n"))
    before = path.stat()
    assert drop_rows(path, values("C9")) == 0
    assert path.stat().st_ino == before.st_ino and path.stat().st_mtime_ns == before.st_mtime_ns


def test_parquet_rows_holding_a_value_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "customers.parquet"
    pd.DataFrame({"customer_id": ["C1", "C2"], "email": ["a@x.com", " B@X.com"]}).to_parquet(path)
    assert drop_rows(path, values("b@x.com")) == 1
    assert pd.read_parquet(path)["customer_id"].tolist() == ["C1"]


def test_reports_lose_mentions_and_the_name_only_where_they_name_the_customer(tmp_path: Path) -> None:
    archive, reports = tmp_path / "archive", tmp_path / "reports"
    (archive / "2026-11-22" / "raw").mkdir(parents=True)
    (archive / "2026-11-22" / "raw" / "customers.csv").write_text("customer_id,first_name\nC1,Zed\nC2,Zed\n")
    reports.mkdir()
    (reports / "preview.html").write_text("<p>C1: Hi Zed</p>")
    (reports / "run_report.md").write_text("Zed is a campaign name here\n")
    (reports / "shot.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00C1")
    counts = erase_files(values("C1"), values("Zed"), archive, reports)
    assert counts == {
        "archive_files": 1,
        "archive_rows": 1,
        "report_files": 1,
        "report_mentions": 2,
        "files_not_text": 1,
    }
    assert (reports / "preview.html").read_text() == "<p>[erased]: Hi [erased]</p>"
    assert (reports / "run_report.md").read_text() == "Zed is a campaign name here\n"
    assert (archive / "2026-11-22" / "raw" / "customers.csv").read_text() == "customer_id,first_name\nC2,Zed\n"
    assert redact_text(reports / "preview.html", values("C1")) == 0  # a repeat changes nothing
