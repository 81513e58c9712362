"""tailor.recommendation/2, tailor.catalog_item/1 and the recommender state payloads."""

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from state_schemas import catalog_item, recommendation
from state_schemas import recommender_state as rs
from state_schemas.profile_state import StateVersionError
from state_schemas.recommendation import RecommendedItem


def test_recommendation_encode_has_every_field():
    rec = recommendation.Recommendation("u", (RecommendedItem("i", 0.5, "content"),), "mf-biased/x", "m1", 10)
    record = recommendation.decode(recommendation.encode(rec, emit_time=11))
    assert record == {
        "schema": "tailor.recommendation/2", "user_id": "u",
        "items": [{"item_id": "i", "score": 0.5, "source": "content"}],
        "model_version": "mf-biased/x", "message_id": "m1", "event_time": 10, "emit_time": 11,
    }


def test_recommendation_json_schema_lists_the_same_fields():
    schema = json.loads((Path(recommendation.__file__).parent / "recommendation.schema.json").read_text())
    rec = recommendation.Recommendation("u", (), "v", None, 1)
    assert set(schema["required"]) == set(recommendation.decode(recommendation.encode(rec, 2)))
    assert set(schema["properties"]["items"]["items"]["properties"]["source"]["enum"]) == recommendation.SOURCES


def test_recommendation_records_with_and_without_categories_match_the_json_schema():
    schema = json.loads((Path(recommendation.__file__).parent / "recommendation.schema.json").read_text())
    items = (RecommendedItem("i", 0.5, "content", "shoes"), RecommendedItem("j", 0.25, "popular"))
    record = recommendation.decode(recommendation.encode(recommendation.Recommendation("u", items, "v", "m", 1), 2))
    jsonschema.validate(record, schema)
    assert [i.get("category") for i in record["items"]] == ["shoes", None]
    record["items"][0]["category"] = 7
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, schema)


def test_catalog_item_roundtrip_and_errors():
    item = catalog_item.CatalogItem("7", "Red shoe", "shoes", ("red",))
    assert catalog_item.decode(catalog_item.encode(item)) == item
    with pytest.raises(ValueError, match="tags must be a list of strings"):
        catalog_item.decode('{"schema": "tailor.catalog_item/1", "item_id": "7", "title": "x", "tags": "red"}')


def test_recommender_payloads_roundtrip():
    item = rs.ItemState(3, 1, 2, "c", [0.5, [0.1, 0.2]], {"": 12.5, "vip": 11.0}, (4, "t", "c", ("g",)))
    assert rs.decode_item(rs.encode_item(item)) == item
    g = rs.GlobalsState("0.23.0", "abcd", [3.0, 2.5], 123, 9, 4)
    assert rs.decode_globals(rs.encode_globals(g)) == g


def test_recommender_payloads_keep_floats_exact():
    value = 0.1 + 0.2
    user = rs.UserState(1, 1, [value, [value / 3]], [("i", value)], [], 5, ["i"])
    assert rs.decode_user(rs.encode_user(user)).mf == [value, [value / 3]]


@pytest.mark.parametrize("payload, message", [
    ("[3, 1]", "version 3 is not readable"),
    ('{"v": 1}', "must be a JSON array"),
    ("[1, 2]", "must have 7 fields"),
    ("nope", "not JSON"),
])
def test_recommender_globals_reject_unknown_or_broken(payload, message):
    with pytest.raises(StateVersionError, match=message):
        rs.decode_globals(payload)


def test_recommender_state_first_element_is_version():
    assert orjson.loads(rs.encode_user(rs.UserState()))[0] == rs.USER_VERSION == 2
    assert orjson.loads(rs.encode_item(rs.ItemState()))[0] == rs.ITEM_VERSION == 2


def test_recommender_item_version_1_is_upgraded_on_read_without_covisits():
    v1 = '[1, 4, 0, 2, "c", [0.1, [0.2]], {"": 3.5}, [1, "t", "c", ["g"]]]'
    item = rs.decode_item(v1)
    assert (item.seq, item.pos, item.n_events, item.popularity) == (4, 0, 2, {"": 3.5})
    assert (item.occurrences, item.covisits) == (0.0, {})
    assert rs.decode_item(rs.encode_item(item)) == item


def test_recommender_user_version_1_is_upgraded_on_read():
    v1 = '[1, 3, 2, [0.5, [0.1]], [["a", 1.0, 1000], ["b", 3.0, 2000]], ["b"], 2000, [["a", 0.9, "content"]]]'
    assert rs.decode_user(v1) == rs.UserState(3, 2, [0.5, [0.1]], [("a", 1.0), ("b", 3.0)], ["b"], 2000, ["a"])
