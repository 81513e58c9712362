"""Privacy in the per-user path: pseudonymous ids everywhere a Segmenter emits, redacted dead letters."""

import orjson

from operators.privacy import Privacy, Pseudonymizer
from operators.segment_rules import SegmentRules
from operators.segmenter import Segmenter
from state_schemas import dead_letter

RULES = SegmentRules.from_dict({"session_gap": "30m", "segments": [
    {"name": "browsing", "when": "session.product_views >= 2"}]})
P = Pseudonymizer(b"unit-test-key-0123456789")


def view(n: int, user: str = "bob@example.com") -> bytes:
    return orjson.dumps({"type": "track", "event": "Product Viewed", "messageId": f"m{n}", "userId": user,
                         "timestamp": 1_700_000_000_000 + n, "properties": {"product_id": "p1"},
                         "context": {"ip": "198.51.100.7"}})


def test_changes_state_and_model_inputs_carry_only_the_pseudonym() -> None:
    inputs, letters = [], []
    seg = Segmenter(RULES, privacy=Privacy(P), on_model_input=inputs.append, on_dead_letter=letters.append)
    emitted = [e for n in range(3) for e in seg.process(view(n))]
    pseudonym = P.pseudonym("bob@example.com")
    assert [(e.user_id, e.change.segment) for e in emitted] == [(pseudonym, "browsing")]
    assert b"bob@example.com" not in emitted[0].payload and pseudonym.encode() in emitted[0].payload
    assert list(seg.store.users()) == [pseudonym] and {m.user_id for m in inputs} == {pseudonym}
    assert letters == []


def test_the_same_id_in_another_runner_gets_the_same_pseudonym_and_keys_differ() -> None:
    assert Pseudonymizer(b"unit-test-key-0123456789").pseudonym("x") == P.pseudonym("x")
    assert Pseudonymizer(b"another-key-0123456789ab").pseudonym("x") != P.pseudonym("x")
    assert P.pseudonym("1001") == P.pseudonym(P.pseudonym("1001"))


def test_dead_letters_lose_context_and_traits_and_raw_ids() -> None:
    letters: list[bytes] = []
    seg = Segmenter(RULES, privacy=Privacy(P), on_dead_letter=letters.append)
    bad = orjson.loads(view(1))
    del bad["event"]
    bad["traits"] = {"email": "bob@example.com"}
    seg.process(orjson.dumps(bad))
    [letter] = letters
    original = orjson.loads(dead_letter.decode(letter)["original"])
    assert original["userId"] == P.pseudonym("bob@example.com") and original["redacted"] == ["traits", "context"]
    assert b"bob@example.com" not in letter and b"198.51.100.7" not in letter


def test_without_a_key_ids_stay_and_only_pii_fields_go() -> None:
    letters: list[bytes] = []
    seg = Segmenter(RULES, on_dead_letter=letters.append)
    seg.process(b'{"type":"track","userId":"u1","messageId":"m","timestamp":1700000000000,"context":{"ip":"x"}}')
    original = orjson.loads(dead_letter.decode(letters[0])["original"])
    assert original == {"type": "track", "userId": "u1", "messageId": "m", "timestamp": 1700000000000,
                        "redacted": ["context"]}
    kept: list[bytes] = []
    Segmenter(RULES, on_dead_letter=kept.append, privacy=Privacy(redact_dead_letters=False)).process(b'{"x": 1}')
    assert dead_letter.decode(kept[0])["original"] == '{"x": 1}'
