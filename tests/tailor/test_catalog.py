"""Catalogs for the catalog topic: the simulated one matches the simulator's events; clear CLI errors."""

from __future__ import annotations

import pytest

from evaluation.simulator import ShopperSimulator, price_band
from state_schemas import catalog_item
from tailor import cli
from tailor.catalog import CatalogError, catalog_items

T0 = 1_795_687_200_000


def products_in(events: list[dict]) -> list[dict]:
    """Every product an event mentions: the event's own and those of its ``products`` list."""
    found = []
    for event in events:
        props = event.get("properties", {})
        if "product_id" in props:
            found.append(props)
        found.extend(props.get("products", []))
    return found


def test_simulator_catalog_matches_the_products_of_its_events():
    sim = ShopperSimulator(seed=5, users=200, items=400, categories=12)
    by_id = {item.item_id: item for item in sim.catalog()}
    products = products_in(list(sim.events(T0, rate=50, count=3_000)))

    assert len(by_id) == 400
    assert len(products) > 1_000
    for product in products:
        item = by_id[product["product_id"]]
        assert item.category == product["category"]
        assert item.tags == (price_band(product["price"]),)


def test_simulator_catalog_is_repeatable_and_leaves_the_events_unchanged():
    sim = ShopperSimulator(seed=5, users=200, items=50, categories=4)
    before = list(sim.events(T0, rate=50, count=200))

    assert sim.catalog() == ShopperSimulator(seed=5, users=200, items=50, categories=4).catalog()
    assert list(sim.events(T0, rate=50, count=200)) == before


def test_simulator_catalog_titles_share_a_word_within_a_category():
    items = ShopperSimulator(seed=1, users=100, items=300, categories=6).catalog()
    kinds: dict[str, set[str]] = {}
    for item in items:
        kinds.setdefault(item.category, set()).add(item.title.split(" ", 1)[1])

    assert all(len(k) == 1 for k in kinds.values())
    assert len({next(iter(k)) for k in kinds.values()}) == 6  # and differs between categories


def test_simulator_catalog_records_round_trip():
    item = ShopperSimulator(seed=1, users=10, items=3, categories=2).catalog()[2]

    assert catalog_item.decode(catalog_item.encode(item)) == item


def test_catalog_items_default_simulated_matches_tailor_simulate_defaults():
    items = catalog_items("simulated")

    assert items == ShopperSimulator(seed=7, users=2000).catalog()


def test_catalog_items_missing_movielens_dir_says_where_and_what(tmp_path):
    with pytest.raises(CatalogError, match=r"MovieLens-100K files not found: .*u\.item.*--path"):
        catalog_items("movielens", path=tmp_path)


def test_catalog_items_missing_taobao_csv_says_where_and_what(tmp_path):
    with pytest.raises(CatalogError, match=r"Taobao CSV not found: .*nope\.csv.*--path FILE"):
        catalog_items("taobao", path=tmp_path / "nope.csv")


def test_catalog_items_movielens_from_the_shared_data():
    items = catalog_items("movielens")

    assert len(items) == 1682
    assert items[0].title == "Toy Story (1995)"


def test_cli_catalog_load_needs_a_known_source(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["catalog", "load", "netflix"])

    assert exit_.value.code == 2
    assert "invalid choice: 'netflix'" in capsys.readouterr().err


def test_cli_catalog_load_missing_data_dir_exits_1_with_the_path(tmp_path, capsys):
    code = cli.main(["catalog", "load", "movielens", "--path", str(tmp_path / "ml")])

    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("tailor: error: MovieLens-100K files not found")
    assert str(tmp_path / "ml" / "u.item") in err


def test_cli_catalog_load_rejects_path_for_simulated(capsys):
    code = cli.main(["catalog", "load", "simulated", "--path", "x"])

    assert code == 2
    assert "--path is for movielens and taobao" in capsys.readouterr().err


@pytest.mark.slow  # ~5 s: the Kafka client's connection attempts to time out
def test_cli_catalog_load_broker_down_says_how_to_start_it(capsys, monkeypatch):
    monkeypatch.setenv("TAILOR_KAFKA_PORT", "1")  # nothing listens on port 1
    monkeypatch.setenv("TAILOR_CATALOG_TOPIC", "test.never-created")

    code = cli.main(["catalog", "load", "simulated", "--users", "10"])

    assert code == 1
    err = capsys.readouterr().err
    assert "cannot reach Kafka on 127.0.0.1:1" in err
    assert "bin/tailor stack up" in err
