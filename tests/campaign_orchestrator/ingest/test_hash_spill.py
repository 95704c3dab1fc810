"""HashSpill answers the whole-source questions exactly as the in-memory forms it replaced, one
bucket at a time, and leaves nothing on disk once closed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign_orchestrator.ingest.hash_spill import BUCKETS, HashSpill

# Few distinct values over the whole 64-bit range, so that repeats happen and every bucket is used.
values = st.lists(st.sampled_from([int(v) for v in np.linspace(0, 2**64 - 1, 40, dtype=np.uint64)]), max_size=200)
chunked = st.lists(values, max_size=6)


def spill_of(chunks: list[list[int]], folder: Path) -> HashSpill:
    spill = HashSpill(folder)
    for chunk in chunks:
        spill.add(np.array(chunk, dtype=np.uint64))
    return spill


@settings(max_examples=60, deadline=None)
@given(chunks=chunked)
def test_repeats_and_duplicates_are_those_of_all_the_hashes_at_once(chunks: list[list[int]], tmp_path_factory) -> None:
    everything = pd.Series(np.array([v for c in chunks for v in c], dtype=np.uint64))
    with spill_of(chunks, tmp_path_factory.mktemp("spill")) as spill:
        assert spill.count == len(everything)
        assert spill.repeats() == len(everything) - everything.nunique()
        duplicates = spill.duplicates(sample=3)
        shared = everything.duplicated(keep=False)
        assert duplicates.rows == int(shared.sum())
        assert duplicates.distinct == everything[shared].nunique()
        assert len(duplicates.sample) == min(3, duplicates.distinct)
        assert set(duplicates.sample) <= set(everything[shared].tolist())


@settings(max_examples=60, deadline=None)
@given(tonight=chunked, before=chunked)
def test_churn_counts_new_and_gone_distinct_hashes(tonight, before, tmp_path_factory) -> None:
    now = {v for c in tonight for v in c}
    then = {v for c in before for v in c}
    folder = tmp_path_factory.mktemp("churn")
    with spill_of(tonight, folder) as a, spill_of(before, folder) as b:
        assert a.churn(b) == (len(now - then), len(then - now), len(now), len(then))


def test_a_million_hashes_are_held_a_bucket_at_a_time_and_removed_on_close(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 2**64 - 1, size=1_000_000, dtype=np.uint64)
    spill = HashSpill(tmp_path)
    for part in np.array_split(np.concatenate([hashes, hashes[:1000]]), 7):
        spill.add(part)
    sizes = [len(b) for b in spill.buckets()]
    assert sum(sizes) == 1_001_000 and max(sizes) < 3 * 1_001_000 / BUCKETS  # no bucket holds much
    assert spill.repeats() == 1000
    spill.close()
    assert list(tmp_path.iterdir()) == []
