"""Row hashes of a whole source kept on disk, answered bucket by bucket: memory flat in rows.

The whole-source checks (a unique key, exact repeats of events, key churn against the live
table) need every row's 64-bit hash. Held in one array they cost 8 bytes a row plus the sort or
hash table that answers the question (two to three times more): at 10M customers the preferences
key alone (36M rows) passed 800 MB. Here each chunk's hashes are appended to one of 256 files by
their top 8 bits; a question is then answered one bucket at a time, since equal hashes always
share a bucket. Peak memory is one bucket (1/256 of the source), the disk holds 8 bytes a row in
a temporary folder removed on close.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

BUCKET_BITS = 8
BUCKETS = 1 << BUCKET_BITS


@dataclass(frozen=True)
class Duplicates:
    """Rows whose hash another row shares, how many distinct hashes that is, and a few of them."""

    rows: int
    distinct: int
    sample: list[int]


class HashSpill:
    """64-bit hashes appended chunk by chunk, read back one bucket (by the top 8 bits) at a time."""

    def __init__(self, directory: Path | None = None) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="hash-spill-", dir=directory))
        self.count = 0

    def __enter__(self) -> HashSpill:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    def _path(self, bucket: int) -> Path:
        return self._folder / f"{bucket:03d}.u64"

    def add(self, hashes: np.ndarray) -> None:
        import numpy as np

        values = np.ascontiguousarray(hashes, dtype=np.uint64)
        if not len(values):
            return
        top = (values >> np.uint64(64 - BUCKET_BITS)).astype(np.int64)
        order = np.argsort(top, kind="stable")
        values, top = values[order], top[order]
        bounds = np.searchsorted(top, np.arange(BUCKETS + 1))
        for bucket in np.flatnonzero(np.diff(bounds)):
            with self._path(int(bucket)).open("ab") as fh:
                values[bounds[bucket] : bounds[bucket + 1]].tofile(fh)
        self.count += len(values)

    def bucket(self, index: int) -> np.ndarray:
        import numpy as np

        path = self._path(index)
        return np.fromfile(path, dtype=np.uint64) if path.exists() else np.array([], dtype=np.uint64)

    def buckets(self) -> Iterator[np.ndarray]:
        for index in range(BUCKETS):
            yield self.bucket(index)

    def repeats(self) -> int:
        """How many hashes repeat an earlier one (rows minus distinct hashes)."""
        import numpy as np

        return sum(len(b) - len(np.unique(b)) for b in self.buckets())

    def duplicates(self, sample: int = 10) -> Duplicates:
        """The rows sharing a hash with another row, as `pd.Series.duplicated(keep=False)` counts."""
        import numpy as np

        rows = distinct = 0
        shown: list[int] = []
        for b in self.buckets():
            values, counts = np.unique(b, return_counts=True)
            shared = counts > 1
            rows += int(counts[shared].sum())
            distinct += int(shared.sum())
            shown += [int(v) for v in values[shared][: max(0, sample - len(shown))]]
        return Duplicates(rows, distinct, shown)

    def churn(self, before: HashSpill) -> tuple[int, int, int, int]:
        """(new, gone, tonight, before): distinct hashes here and not in `before`, and the reverse."""
        import numpy as np

        new = gone = tonight = earlier = 0
        for index in range(BUCKETS):
            now, then = np.unique(self.bucket(index)), np.unique(before.bucket(index))
            new += int(len(now) - np.isin(now, then, assume_unique=True).sum())
            gone += int(len(then) - np.isin(then, now, assume_unique=True).sum())
            tonight += len(now)
            earlier += len(then)
        return new, gone, tonight, earlier
