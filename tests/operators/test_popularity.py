"""DecayedPopularity: decay in event time, segments, exclusions, bounded tables, exact persistence."""

import pytest

from operators.popularity import DecayedPopularity


def test_popularity_decays_with_half_life():
    pop = DecayedPopularity(half_life_ms=1000)
    pop.learn_one("a", 0, weight=4.0)
    assert pop.score("a", now=2000) == pytest.approx(1.0)


def test_popularity_recent_beats_old_with_same_count():
    pop = DecayedPopularity(half_life_ms=1000)
    pop.learn_one("old", 0)
    pop.learn_one("new", 5000)
    assert [i for i, _ in pop.top(2)] == ["new", "old"]


def test_popularity_out_of_order_events_are_exact():
    a, b = DecayedPopularity(1000), DecayedPopularity(1000)
    for t in (0, 500, 2000):
        a.learn_one("x", t)
    for t in (2000, 0, 500):
        b.learn_one("x", t)
    assert a.score("x", 3000) == pytest.approx(b.score("x", 3000))


def test_popularity_per_segment_and_exclude():
    pop = DecayedPopularity(1000)
    pop.learn_one("a", 0, segments=("vip",))
    pop.learn_one("b", 0)
    pop.learn_one("b", 0)
    assert [i for i, _ in pop.top(5, segment="vip")] == ["a"]
    assert [i for i, _ in pop.top(5, exclude={"b"})] == ["a"]
    assert pop.top(5, segment="unknown") == []


def test_popularity_board_is_exact_top_even_when_small():
    pop = DecayedPopularity(1000, board_size=3)
    counts = {"a": 1, "b": 5, "c": 2, "d": 4, "e": 3}
    for item, n in counts.items():
        for _ in range(n):
            pop.learn_one(item, 0)
    assert [i for i, _ in pop.top(3)] == ["b", "d", "e"]
    assert [i for i, _ in pop.top(3, exclude={"b"})] == ["d", "e", "c"]


def test_popularity_segment_tables_are_capped_and_report_dropped_items():
    pop = DecayedPopularity(1000, segment_cap=10)
    for n in range(30):
        pop.learn_one(f"i{n}", n * 10, segments=("s",))
    assert len(pop.tables["s"].levels) <= 10 + 10 // 8 + 1
    assert pop.take_dropped()


def test_popularity_export_import_rebuilds_same_top():
    pop = DecayedPopularity(1000, board_size=2)
    for n, item in enumerate("abcabca"):
        pop.learn_one(item, n * 100, segments=("s",))
    restored = DecayedPopularity(1000, board_size=2)
    for item in "cab":
        restored.import_item(item, pop.export_item(item))
    assert restored.top(2, now=1000) == pop.top(2, now=1000)
    assert restored.top(2, segment="s", now=1000) == pop.top(2, segment="s", now=1000)


def test_popularity_remove_item_refills_board():
    pop = DecayedPopularity(1000, board_size=1)
    pop.learn_one("a", 0, weight=2)
    pop.learn_one("b", 0)
    pop.remove_item("a")
    assert [i for i, _ in pop.top(1)] == ["b"]
