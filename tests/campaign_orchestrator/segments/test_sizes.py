"""Live sizes (segments.sizes): the one-pass counts equal `estimate` for every rule of the
language, on every engine; blocks are cached until the data changes; the sample is members."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from campaign_orchestrator.segments.compile import Inline
from campaign_orchestrator.segments.memberships import estimate
from campaign_orchestrator.segments.sizes import SizeCache, rule_sizes, top_level_blocks
from campaign_orchestrator.warehouse.tables import import_log
from tests.campaign_orchestrator.segments.rule_examples import BASE, LIFECYCLES, RULES, RUN, loaded, vocab_for

__all__ = ["loaded"]  # the fixture, from rule_examples

INLINE_LIFECYCLES = {lc.id: lc.stages for lc in LIFECYCLES}
OTHERWISE = {lc.id: lc.otherwise for lc in LIFECYCLES}


def test_one_pass_sizes_equal_the_estimate_of_the_rule_and_of_each_block(loaded):
    rules = {**BASE, **RULES}
    vocab = vocab_for(rules)
    inline = Inline(rules, INLINE_LIFECYCLES, OTHERWISE)
    with loaded.connect() as conn:
        for segment_id, rule in rules.items():
            with loaded.begin() as own:
                sizes = rule_sizes(own, rule, vocab, RUN, inline, sample_size=3)
            expected = estimate(conn, segment_id, rules, vocab, RUN, LIFECYCLES, sample_size=1000)
            assert sizes.total == expected.size, segment_id
            assert set(sizes.sample) <= set(expected.sample) and len(sizes.sample) <= 3, segment_id
            assert bool(sizes.sample) == (expected.size > 0), segment_id
            _, blocks = top_level_blocks(rule)
            for i, block in enumerate(blocks):
                alone = estimate(conn, "b", {**rules, "b": block}, vocab, RUN, LIFECYCLES, sample_size=0)
                assert sizes.blocks[i] == alone.size, (segment_id, i)


def test_an_unchanged_block_is_not_counted_again_until_the_data_changes(loaded):
    rules = {**BASE, **RULES}
    vocab = vocab_for(rules)
    inline = Inline(rules, INLINE_LIFECYCLES, OTHERWISE)
    cache = SizeCache()
    first = {"all": [{"attribute": "tier", "eq": "gold"}, {"event": "purchase", "within_last": "30d"}]}
    edited = {"all": [{"attribute": "tier", "eq": "gold"}, {"event": "purchase", "within_last": "60d"}]}
    with loaded.connect() as conn:
        with conn.begin():
            a = rule_sizes(conn, first, vocab, RUN, inline, cache=cache, part="blocks")
        with conn.begin():
            b = rule_sizes(conn, edited, vocab, RUN, inline, cache=cache, part="blocks")
        with conn.begin():
            total = rule_sizes(conn, edited, vocab, RUN, inline, cache=cache, part="total")
    assert (a.counted_blocks, b.counted_blocks, total.counted_blocks) == (2, 1, 0)
    assert a.blocks[0] == b.blocks[0] and total.blocks == [-1, -1] and total.total >= 0
    with loaded.begin() as conn:  # a new import: every count may be stale
        conn.execute(
            sa.insert(import_log).values(
                run_date=RUN,
                source="profiles",
                file="p.csv",
                status="published",
                rows_read=1,
                rows_loaded=1,
                rows_quarantined=0,
                imported_at=dt.datetime(2026, 11, 22, 3),
            )
        )
    with loaded.connect() as conn, conn.begin():
        again = rule_sizes(conn, edited, vocab, RUN, inline, cache=cache, part="blocks")
    assert again.counted_blocks == 2 and again.blocks == b.blocks


def test_the_blocks_a_builder_shows():
    assert top_level_blocks({"all": [1, 2]}) == ("all", [1, 2])
    assert top_level_blocks({"any": [1]}) == ("any", [1])
    assert top_level_blocks({"not": {"segment": "x"}}) == ("not", [{"segment": "x"}])
    assert top_level_blocks({"attribute": "tier", "eq": "gold"}) == ("one", [{"attribute": "tier", "eq": "gold"}])
