"""Rewriting a kept file without the values of erased customers, atomically.

Data files (CSV, gzipped or not, whatever the delimiter; Parquet) lose every row that names one
of the values; other text files (reports) have each occurrence replaced by `[erased]`. A CSV row
is a record, not a line: a line whose quotes are unbalanced continues on the next one, so a quoted
newline never splits a row. A value matches as a whole token, case-insensitively (`C0000137` does
not match inside `C00001370`, nor an address inside a longer one).

Invariant: a file is replaced only by a complete rewrite in the same folder (a temporary file,
fsync, `os.replace`), so a crash leaves either the old file or the new one; a file that names none
of the values is not touched.
"""

from __future__ import annotations

import gzip
import os
import re
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ERASED = "[erased]"
READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class Values:
    """The values to erase: lower-cased for stores that compare cells whole, and one pattern that
    finds any of them as a whole token in text."""

    words: frozenset[str]
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, values: Collection[str]) -> Values | None:
        """None for no values."""
        words = sorted({v.strip() for v in values if v and v.strip()}, key=len, reverse=True)
        if not words:
            return None
        alternatives = "|".join(re.escape(w) for w in words)
        pattern = re.compile(rf"(?<![\w@+-])(?<!\w\.)(?:{alternatives})(?![\w@+-])(?!\.\w)", re.IGNORECASE)
        return cls(frozenset(w.lower() for w in words), pattern)


def _opener(path: Path) -> Any:
    return gzip.open if path.suffix == ".gz" else open


@contextmanager
def _replacing(path: Path, binary: bool = True) -> Iterator[IO[Any]]:
    """A temporary file next to `path` that replaces it once the block ends without an error."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".erasing", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        opener = _opener(path)
        with opener(tmp, "wb") as out:
            yield out
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def names_any(path: Path, values: Values) -> bool:
    """Whether the file's text (decompressed) names any value; read in blocks with an overlap."""
    overlap = 512
    tail = ""
    with _opener(path)(path, "rb") as fh:
        while block := fh.read(READ_BLOCK):
            text = tail + block.decode("utf-8", errors="replace")
            if values.pattern.search(text):
                return True
            tail = text[-overlap:]
    return False


def _records(fh: IO[bytes]) -> Iterator[bytes]:
    """CSV records as their raw bytes: lines joined while their quotes are unbalanced."""
    pending: list[bytes] = []
    quotes = 0
    for line in fh:
        pending.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            yield b"".join(pending)
            pending, quotes = [], 0
    if pending:
        yield b"".join(pending)


def drop_rows(path: Path, values: Values) -> int:
    """Rewrite a data file without the rows naming a value (the header stays); rows removed."""
    if path.suffix == ".parquet":
        return _drop_parquet_rows(path, values)
    if not names_any(path, values):
        return 0
    removed = 0
    with _opener(path)(path, "rb") as src, _replacing(path) as out:
        for number, record in enumerate(_records(src)):
            if number > 0 and values.pattern.search(record.decode("utf-8", errors="replace")):
                removed += 1
                continue
            out.write(record)
    return removed


def _drop_parquet_rows(path: Path, values: Values) -> int:
    """Parquet cells compare whole (trimmed, case-insensitive) with the values the pattern names."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    words = pa.array(sorted(values.words))
    table = pq.read_table(path)
    hit = pa.array([False] * table.num_rows)
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            lowered = pc.utf8_lower(pc.utf8_trim_whitespace(column))
            hit = pc.or_(hit, pc.fill_null(pc.is_in(lowered, value_set=words), False))
    removed = int(pc.sum(hit).as_py() or 0)
    if removed:
        with _replacing(path) as out:
            pq.write_table(table.filter(pc.invert(hit)), out)
    return removed


def redact_text(path: Path, values: Values, also: Values | None = None) -> int:
    """Replace each value named in a text file by `[erased]`, and then those of `also` (where the
    file names a value at all); occurrences replaced (0: untouched, also for a file that is not
    UTF-8 text, such as an image)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return 0
    if "\x00" in text:
        return 0
    new, count = values.pattern.subn(ERASED, text)
    if count and also is not None:
        new, more = also.pattern.subn(ERASED, new)
        count += more
    if count:
        with _replacing(path) as out:
            out.write(new.encode("utf-8"))
    return count
