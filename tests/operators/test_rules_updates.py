"""Rules changed in a running segmenter (operators.rules_updates through Segmenter): newer rules take over
at once, older and replayed updates change nothing, removed rules are exited, and every rule change says
which rules made it."""

from __future__ import annotations

import orjson
import yaml

from operators.model_hub import ModelHub
from operators.models_config import ModelsConfig
from operators.rules_updates import rules_update
from operators.segment_rules import SegmentRules
from operators.segmenter import Segmenter
from settings import PROJECT_ROOT
from state_schemas import dead_letter, segment_change
from state_schemas.model_input import RETUNE, ModelInput

T0 = 1_795_687_200_000
DEFAULT = yaml.safe_load((PROJECT_ROOT / "config" / "segments.yaml").read_text())


def rules_with(**changes: str) -> dict:
    """The default rules with some segments' conditions replaced (None: the segment removed)."""
    segments = [{**s, "when": changes.get(s["name"], s["when"])} for s in DEFAULT["segments"]
                if changes.get(s["name"], "") is not None]
    return {**DEFAULT, "segments": segments}


def view(n: int, user: str = "u1", event: str = "Product Viewed") -> bytes:
    return orjson.dumps({"type": "track", "event": event, "userId": user, "messageId": f"{user}-{n}",
                         "timestamp": T0 + n * 1_000, "properties": {"product_id": f"p{n}"}})


def update(rules: dict, applied_at: int, user: str = "tailor:broadcast") -> bytes:
    message = rules_update(rules, applied_at, f"rules-{applied_at}")
    return orjson.dumps({**message, "userId": user})


def decoded(segmenter: Segmenter, raw: bytes) -> list[dict]:
    return [segment_change.decode(e.payload) for e in segmenter.process(raw)]


def new_segmenter(**kwargs) -> Segmenter:
    return Segmenter(SegmentRules.from_dict(DEFAULT), out_of_orderness_ms=None, **kwargs)


def test_newer_rules_take_over_at_the_next_event() -> None:
    kept: list[tuple[int, str]] = []
    segmenter = new_segmenter(on_rules=lambda at, rules: kept.append((at, rules.version)))
    for n in range(3):
        segmenter.process(view(n))
    cart_add = view(3, event="Product Added")
    assert not any(c["segment"] == "interested_but_hesitant" for c in decoded(segmenter, cart_add))
    looser = SegmentRules.from_dict(rules_with(interested_but_hesitant="session.product_views >= 3 and "
                                               "session.cart_adds >= 1 and session.purchases == 0"))

    assert segmenter.process(update(dict(looser.source), T0)) == []
    changes = decoded(segmenter, view(4))

    entered = [c for c in changes if c["segment"] == "interested_but_hesitant"]
    assert [(c["change"], c["rules_version"]) for c in entered] == [("enter", looser.version)]
    assert kept == [(T0, looser.version)]


def test_an_older_or_replayed_update_changes_nothing() -> None:
    segmenter = new_segmenter(rules_applied_at=T0)
    before = segmenter.step.tracker.rules

    segmenter.process(update(rules_with(active=None), T0))  # the same instant: a replay
    segmenter.process(update(rules_with(active=None), T0 - 1))

    assert segmenter.step.tracker.rules is before and segmenter.rules_updates == 0


def test_a_removed_rule_is_exited_at_the_users_next_event() -> None:
    segmenter = new_segmenter()
    first = decoded(segmenter, view(0))
    assert {"active", "weekly_active"} <= {c["segment"] for c in first if c["change"] == "enter"}

    segmenter.process(update(rules_with(active=None), T0))
    changes = decoded(segmenter, view(1))

    assert [(c["segment"], c["change"], c["reason"]) for c in changes] == [("active", "exit", "the rule was removed")]


def test_an_update_not_for_every_bucket_or_that_does_not_compile_is_a_dead_letter() -> None:
    letters: list[bytes] = []
    segmenter = new_segmenter(on_dead_letter=letters.append)
    before = segmenter.step.tracker.rules

    segmenter.process(update(rules_with(active=None), T0, user="u1"))
    segmenter.process(update({"segments": [{"name": "x", "when": "no_such_fact > 1"}]}, T0 + 1))

    reasons = [dead_letter.decode(letter)["reason"] for letter in letters]
    assert [dead_letter.decode(letter)["error"] for letter in letters] == ["invalid_rules_update"] * 2
    assert "userId must be 'tailor:broadcast'" in reasons[0] and "unknown fact 'no_such_fact'" in reasons[1]
    assert segmenter.step.tracker.rules is before


def with_models(rules: dict, applied_at: int, models: dict) -> bytes:
    return orjson.dumps(rules_update(rules, applied_at, f"rules-{applied_at}", models))


def test_live_model_settings_go_to_the_model_hub_once_per_newer_update() -> None:
    inputs: list[ModelInput] = []
    segmenter = new_segmenter(on_model_input=inputs.append)
    blend = {"blend": {"popular": 1.0}}
    segmenter.process(with_models(DEFAULT, T0, blend))
    segmenter.process(with_models(DEFAULT, T0, blend))  # replayed: nothing
    segmenter.process(update(DEFAULT, T0 + 5))  # newer, without models: nothing for the hub
    retunes = [m for m in inputs if m.event_name == RETUNE]
    assert [(m.user_id, orjson.loads(m.item_id), m.timestamp) for m in retunes] == [
        ("tailor:broadcast", blend, T0)]


def test_model_settings_a_running_job_cannot_take_make_the_update_a_dead_letter() -> None:
    letters: list[bytes] = []
    inputs: list[ModelInput] = []
    segmenter = new_segmenter(on_dead_letter=letters.append, on_model_input=inputs.append)
    segmenter.process(with_models(DEFAULT, T0, {"mf": {"n_factors": 8}}))
    assert [dead_letter.decode(r)["error"] for r in letters] == ["invalid_rules_update"]
    assert "only blend settings" in dead_letter.decode(letters[0])["reason"]
    assert segmenter.rules_updates == 0 and not inputs


def test_the_model_hub_takes_the_newest_blend_keeps_it_in_state_and_names_it_in_the_model_version() -> None:
    models = ModelsConfig.from_yaml(PROJECT_ROOT / "config" / "models.yaml")
    hub = ModelHub(models)
    base_version = hub.model_version

    def retune(applied_at: int, blend: dict) -> None:
        settings = orjson.dumps({"blend": blend}).decode()
        hub.process_one(ModelInput("tailor:broadcast", settings, RETUNE, applied_at, None, (), (), None))

    retune(T0, {"popular": 1.0})
    retune(T0, {"popular": 1.0})  # the other buckets' copies
    retune(T0 - 1, {"popular": 0.0})  # older: ignored
    assert hub.recommender.config.blend_popular == 1.0
    assert hub.model_version.startswith(base_version + "/tuned-")
    restored = ModelHub.restore(models, hub.take_changes().globals, [], [])
    assert restored.recommender.config == hub.recommender.config
    assert restored.model_version == hub.model_version
    assert "tailor:broadcast" not in hub.clusters  # not a user
