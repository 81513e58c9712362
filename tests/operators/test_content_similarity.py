"""ContentIndex: TF-IDF cosine neighbours, profiles, bounded postings, removal."""

from operators.content_similarity import ContentIndex, item_terms
from state_schemas.catalog_item import CatalogItem


def _index(**kwargs):
    index = ContentIndex(**kwargs)
    index.add(CatalogItem("toy", "Toy Story", None, ("Animation", "Comedy")))
    index.add(CatalogItem("alad", "Aladdin", None, ("Animation", "Comedy", "Musical")))
    index.add(CatalogItem("heat", "Heat", None, ("Action", "Crime")))
    index.add(CatalogItem("casino", "Casino", None, ("Crime", "Drama")))
    return index


def test_content_similar_prefers_shared_rare_terms():
    assert [i for i, _ in _index().similar("heat")] == ["casino"]


def test_content_profile_excludes_its_own_items_and_excluded():
    index = _index()
    assert "toy" not in [i for i, _ in index.similar_to_profile({"toy": 1.0})]
    assert index.similar_to_profile({"toy": 1.0}, exclude={"alad"}) == []


def test_content_term_in_every_item_has_no_weight():
    index = ContentIndex()
    index.add(CatalogItem("1", "item 1", "c1"))
    index.add(CatalogItem("2", "item 2", "c2"))
    assert index.similar("1") == []


def test_content_postings_scan_is_capped():
    index = ContentIndex(max_postings=5)
    for n in range(50):
        index.add(CatalogItem(str(n), f"item {n}", "cat"))
    index.add(CatalogItem("other", "x", "dog"))
    assert len(index.similar("0", k=100)) <= 5


def test_content_remove_forgets_item():
    index = _index()
    index.remove("casino")
    assert index.similar("heat") == [] and "casino" not in index


def test_item_terms_skip_numbers():
    assert item_terms(CatalogItem("1", "Heat (1995)", "Films")) == {"t:heat": 1, "c:films": 1}
