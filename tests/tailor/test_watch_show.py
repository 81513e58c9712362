"""``tailor watch`` lines and ``tailor show`` formatting: one aligned line each, readable explanations."""

from __future__ import annotations

import pytest

from tailor import cli
from tailor.show import ClusterRow, UserView, format_clusters, format_user
from tailor.watch import HEADER, WatchError, format_change, format_recommendation, parse_show

RULE = {"event_time": 1_000, "emit_time": 1_012, "change": "enter", "segment": "cart_abandoner", "kind": "rule",
        "user_id": "user-12", "trigger": "timer", "facts": {"cart_adds": 1}}
CLUSTER = {"event_time": 1_000, "emit_time": 1_030, "change": "enter", "segment": "Cart Fillers", "kind": "cluster",
           "user_id": "user-12345678901", "trigger": "event", "facts": {"z.cart_rate": 2.3},
           "reason": "Cart Fillers: cart rate +2.3σ, purchases per session -0.6σ, views per session -0.2σ, "
                     "sessions per day +0.1σ vs all users"}
RECS = {"event_time": 1_000, "emit_time": 1_040, "user_id": "user-7", "items": [
    {"item_id": f"p{i}", "score": 1 - i / 10, "source": s} for i, s in enumerate(["mf", "content", "popular", "mf"])]}


def test_watch_lines_align_with_the_header():
    lines = [HEADER, format_change(RULE), format_change(CLUSTER), format_recommendation(RECS)]
    user_column = HEADER.index("user")

    assert all(line[user_column - 2 : user_column] == "  " for line in lines)
    assert [line[user_column:].split()[0] for line in lines[1:]] == ["user-12", "user-12345678901", "user-7"]


def test_watch_cluster_line_is_marked_and_its_reason_shortened():
    line = format_change(CLUSTER)

    assert line.startswith("00:00:01.000  ML seg  + Cart Fillers")
    assert "Cart Fillers: " not in line and "vs all users" not in line
    assert "cart rate +2.3σ, purchases per session -0.6σ" in line
    assert "…" in line and line.endswith("(emitted 30 ms after)")


def test_watch_recommendation_line_shows_the_top_3_with_sources():
    line = format_recommendation(RECS)

    assert "top 3 of 4" in line
    assert "p0 mf · p1 content · p2 popular  (emitted 40 ms after)" in line
    assert "p3" not in line


def test_parse_show_rejects_nothing_and_unknown_names():
    assert parse_show("clusters") == ("clusters",)
    with pytest.raises(WatchError, match="unknown nothing"):
        parse_show(" , ")
    with pytest.raises(WatchError, match="unknown 'recommendations'"):
        parse_show("recommendations")


def test_cli_watch_bad_show_exits_1_before_connecting(capsys):
    code = cli.main(["watch", "--show", "segments"])

    assert code == 1
    assert "choose from rules, clusters, recs" in capsys.readouterr().err


def test_cli_show_needs_what(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["show", "user"])

    assert exit_.value.code == 2
    assert "user_id" in capsys.readouterr().err


def test_format_user_without_cluster_or_recommendations_says_so():
    lines = format_user(UserView("anon-1", {"segments": "", "last_seen": "x"}, None))

    assert lines[1].endswith(" -")
    assert "warming up" in lines[2]
    assert lines[-1].endswith("- (none yet)")


def test_format_clusters_lists_biggest_first_as_given():
    rows = [ClusterRow("Buyers", 30, "purchases +2.0σ", 0), ClusterRow("Browsers", 3, "views +1.0σ", 0)]

    assert [line.split()[0] for line in format_clusters(rows)[1:]] == ["Buyers", "Browsers"]
