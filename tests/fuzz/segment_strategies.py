"""Hypothesis strategies for Segment-Spec messages: valid ones, and hostile mutations of every field the
published schema (``state_schemas/segment_event.schema.json``) names.

Shared by the schema property test (``tests/operators/test_normalize_schema.py``) and the pipeline fuzz test
(``tests/fuzz/test_fuzz_pipeline.py``). A message is a dict of JSON values, where :class:`Deep` stands for a
value nested hundreds or thousands of levels deep: :func:`to_json` writes it as text and :func:`to_value`
builds it without recursion, so neither hypothesis nor the test ever recurses through it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

NOW = 1_795_737_600_000  # 2026-11-27T00:00:00Z: the wall clock the tests pin
DAY = 86_400_000
MIN_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_MS = NOW + DAY
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_DEPTH = 1024  # orjson's nesting limit
TYPES = ("track", "page", "screen", "identify", "alias", "group")
WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()  # a field value meaning "leave the field out"


@dataclass(frozen=True)
class Deep:
    """``leaf`` inside ``depth`` arrays (``kind`` "array") or single-key objects (``kind`` "object")."""

    depth: int
    kind: str
    leaf: Any = 1

    def __repr__(self) -> str:  # hypothesis prints examples: never recurse
        return f"Deep({self.depth}, {self.kind!r}, {self.leaf!r})"


# -- serialization ------------------------------------------------------------------------------------


def to_json(value: Any) -> str:
    """JSON text of a message (``Deep`` expanded as text). Integers of any size are written exactly."""
    if isinstance(value, Deep):
        open_, close = ("[", "]") if value.kind == "array" else ('{"k":', "}")
        return open_ * value.depth + to_json(value.leaf) + close * value.depth
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def to_value(value: Any) -> Any:
    """The Python value of a message (``Deep`` built iteratively), as a JSON parser without limits reads it."""
    if isinstance(value, Deep):
        out = to_value(value.leaf)
        for _ in range(value.depth):
            out = [out] if value.kind == "array" else {"k": out}
        return out
    if isinstance(value, dict):
        return {k: to_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_value(v) for v in value]
    return value


def depth(value: Any) -> int:
    """How many containers deep the message nests (the top-level object counts)."""
    if isinstance(value, Deep):
        return value.depth + depth(value.leaf)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


# -- a reference reading of event times, independent of operators.normalize -----------------------------

_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?(?:(Z)|([+-])(\d\d)(?::?(\d\d))?)", re.ASCII
)


def reference_ms(raw: Any) -> int | None:
    """Epoch ms of an event time the schema accepts: a number (fraction dropped) or a profile ISO string."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw)
    if not isinstance(raw, str) or (m := _ISO.fullmatch(raw)) is None:
        return None
    year, month, day, hour, minute = (int(g) for g in m.group(1, 2, 3, 4, 5))
    second, fraction = int(m.group(6) or 0), (m.group(7) or "") + "000"
    try:
        base = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    offset_min = 0 if m.group(8) else int(m.group(10)) * 60 + int(m.group(11) or 0)
    sign = -1 if m.group(9) == "-" else 1
    return (base - _EPOCH) // timedelta(milliseconds=1) + int(fraction[:3]) - sign * offset_min * 60_000


def event_time_field(msg: dict[str, Any]) -> Any:
    """The event time normalize reads: the first of timestamp, originalTimestamp, sentAt that is not null."""
    for field in ("timestamp", "originalTimestamp", "sentAt"):
        if msg.get(field) is not None:
            return msg[field]
    return None


# -- values ------------------------------------------------------------------------------------------

CHARS = st.characters(exclude_categories=("Cs",))  # lone surrogates cannot be encoded in UTF-8 JSON
TEXT = st.text(CHARS, max_size=12)
SAFE_INTS = st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
EDGE_INTS = st.sampled_from(
    [0, -1, 1001, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) + 1, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**30]
)
EDGE_FLOATS = st.sampled_from(
    [0.0, -0.0, 0.5, 1.0, 1001.0, -7.0, 1.5, 1e18, 9.2e18, 9.3e18, -9.223372036854775808e18, 1e20, 1e308, -1e308,
     5e-324, 946_684_800_000.0, 946_684_799_999.9]
)
LONG_TEXT = st.builds(
    lambda n, c: c * n, st.sampled_from([199, 200, 201, 255, 256, 257, 1000, 30_000]), st.sampled_from("uéx𝒳 ")
)
SPACES = st.text(st.sampled_from(WHITESPACE + "\u200b\ufeff\x00"), min_size=1, max_size=4)


def deep(max_depth: int = 1100) -> st.SearchStrategy[Deep]:
    return st.builds(
        Deep, st.integers(1, max_depth), st.sampled_from(["array", "object"]), st.sampled_from([1, "x", None, []])
    )


SCALARS = st.one_of(st.none(), st.booleans(), SAFE_INTS, EDGE_INTS, st.floats(allow_nan=False, allow_infinity=False),
                    EDGE_FLOATS, TEXT)
JSON = st.recursive(
    SCALARS, lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)
HOSTILE = st.one_of(
    st.just(ABSENT), st.none(), st.just(""), SPACES, st.booleans(), EDGE_INTS, SAFE_INTS, EDGE_FLOATS,
    st.floats(allow_nan=False, allow_infinity=False), TEXT, LONG_TEXT, JSON, deep(),
    st.lists(TEXT, min_size=1, max_size=2), st.dictionaries(TEXT, TEXT, min_size=1, max_size=2),
)


def any_case(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(word, upper, strict=True))
    )


GOOD_TYPES = st.sampled_from(TYPES).flatmap(lambda t: st.just(t) | any_case(t))
BAD_TYPES = st.one_of(
    HOSTILE,
    st.sampled_from(["purchase", "track\n", "track ", " page", "trac\u212a", "TRAC\u212a", "tr ack", "pagE\x00"]),
)
GOOD_IDS = st.one_of(
    st.text(CHARS, min_size=1, max_size=24), st.sampled_from(["u1", "user-74", "anon-61b4ba078f0e", " ", "0"]),
    SAFE_INTS, st.sampled_from(["u" * 256, 2**63 - 1, -(2**63) + 1, 1001.0, -0.0, 1e18]),
)
EVENT_NAMES = st.one_of(
    st.sampled_from(["Product Viewed", "Product Added", "Order Completed", "Viewed Product", "pv", "cart", "fav",
                     "buy", "Checkout Started", "Newsletter Signed-Up", "!!!", "x" * 200]),
    st.text(CHARS, min_size=1, max_size=30).filter(lambda s: not s.isspace()),
)
BAD_EVENT_NAMES = st.one_of(HOSTILE, SPACES, st.just("x" * 201), st.builds(lambda s: s + "a" * 200, SPACES))


@st.composite
def iso_times(draw: st.DrawFn, min_ms: int = MIN_MS, max_ms: int = MAX_MS) -> str:
    """An ISO-8601 string in the accepted profile, in any of its variants, for an instant in the range."""
    ms = draw(st.integers(min_ms, max_ms))
    offset_min = draw(st.sampled_from([0, 0, 60, -300, 330, 345, -(23 * 60 + 59), 23 * 60 + 59]))
    local = _EPOCH + timedelta(milliseconds=ms + offset_min * 60_000)
    sep = draw(st.sampled_from("TTt "))
    text = local.strftime("%Y-%m-%d") + sep + local.strftime("%H:%M")
    if local.second or local.microsecond or draw(st.booleans()):
        text += local.strftime(":%S")
        if local.microsecond or draw(st.booleans()):
            digits = draw(st.integers(1, 9))
            frac = (f"{local.microsecond:06d}" + draw(st.text("0123456789", min_size=3, max_size=3)))[:digits]
            text += draw(st.sampled_from(".,")) + frac
    if offset_min == 0 and draw(st.booleans()):
        return text + "Z"
    sign, hours, minutes = "+" if offset_min >= 0 else "-", abs(offset_min) // 60, abs(offset_min) % 60
    style = draw(st.sampled_from(["hh:mm", "hhmm", "hh"] if minutes == 0 else ["hh:mm", "hhmm"]))
    return text + sign + {"hh:mm": f"{hours:02d}:{minutes:02d}", "hhmm": f"{hours:02d}{minutes:02d}",
                          "hh": f"{hours:02d}"}[style]


GOOD_TIMES = st.one_of(
    iso_times(), st.integers(MIN_MS, MAX_MS), st.floats(MIN_MS, MAX_MS, allow_nan=False),
    st.sampled_from(["2000-02-29T00:00:00Z", "2024-02-29T12:00:00.5+01:00", "2026-11-26T10:00:00.123Z"]),
)


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """``text`` with one character inserted, deleted or replaced."""
    i = draw(st.integers(0, len(text)))
    op = draw(st.sampled_from(["insert", "delete", "replace"]))
    c = draw(st.sampled_from("0123456789:+-.,TtZz \n٣x") | CHARS)
    if op == "insert":
        return text[:i] + c + text[i:]
    if op == "delete":
        return text[:i] + text[i + 1:]
    return text[:i] + c + text[i + 1:]


BAD_TIMES = st.one_of(
    HOSTILE,
    iso_times().flatmap(mutated),
    iso_times(-62_135_596_800_000 + DAY, 253_402_300_799_999 - DAY),  # any year: mostly outside the window
    st.integers(-(2**63), MIN_MS), st.integers(MAX_MS, 2**64), st.sampled_from([1_511_658_000, 15, -1, MAX_MS + 1]),
    st.sampled_from(
        ["2026-11-26T10:00:00", "2026-11-26", "2026-11-26T10:00:00z", "2026-11-26T10:00:00Z\n", "2023-02-29T00:00:00Z",
         "2026-11-31T00:00:00Z", "2026-11-26T24:00:00Z", "2026-11-26T10:00:60Z", "2026-11-26T10:00:00+24:00",
         "2026-11-26T10:00:00.Z", "2026-11-26T10:00:00.1234567890Z", "2026-11-26T10Z", "20261126T100000Z",
         "2026-W48-4T10:00:00Z", "2026-11-26x10:00:00Z", "２０２６-11-26T10:00:00Z", "0000-01-01T00:00:00Z",
         "2026-11-26T10:00:00+05:30:15", "1999-12-31T23:59:59.999Z", "2000-01-01T00:30:00+01:00"]
    ),
)


@st.composite
def properties(draw: st.DrawFn, hostile: bool) -> Any:
    if hostile and draw(st.booleans()):
        return draw(st.one_of(HOSTILE, st.just([1, 2]), st.just("shoes")))
    props: dict[str, Any] = {}
    for key in ("product_id", "sku", "id", "item_id", "category"):
        if draw(st.integers(0, 3)) == 0:
            continue
        bad = hostile and draw(st.integers(0, 3)) == 0
        value = draw(HOSTILE if bad else st.one_of(GOOD_IDS, st.just(""), st.none()))
        if value is not ABSENT:
            props[key] = value
    props.update(draw(st.dictionaries(TEXT, JSON, max_size=2)))
    return props


FIELDS = ("type", "messageId", "userId", "anonymousId", "event", "time", "properties", "extra")


@st.composite
def segment_messages(draw: st.DrawFn) -> Any:
    """A Segment message, valid or with up to three fields mutated; now and then not an object at all."""
    if draw(st.integers(0, 30)) == 0:
        return draw(st.one_of(JSON, deep(), st.just([{"type": "track"}])))
    mutations = draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))
    bad = set(draw(st.lists(st.sampled_from(FIELDS), min_size=mutations, max_size=mutations, unique=True)))
    msg: dict[str, Any] = {}

    def put(key: str, good: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any], field: str = "") -> None:
        value = draw(hostile if (field or key) in bad else good)
        if value is not ABSENT:
            msg[key] = value

    put("type", GOOD_TYPES, BAD_TYPES)
    put("messageId", GOOD_IDS, HOSTILE)
    who = draw(st.sampled_from(["userId", "anonymousId", "both"]))
    put("userId", GOOD_IDS if who != "anonymousId" else st.sampled_from([ABSENT, None, ""]), HOSTILE)
    put("anonymousId", GOOD_IDS if who != "userId" else st.sampled_from([ABSENT, None, ""]), HOSTILE)
    put("event", EVENT_NAMES, BAD_EVENT_NAMES)
    # The event time in one of its three fields, the earlier ones absent or null, the later ones anything.
    slot = draw(st.integers(0, 2))
    for i, key in enumerate(("timestamp", "originalTimestamp", "sentAt")):
        if i < slot:
            put(key, st.sampled_from([ABSENT, None]), st.sampled_from([ABSENT, None]))
        elif i == slot:
            put(key, GOOD_TIMES, BAD_TIMES, "time")
        else:
            put(key, st.one_of(st.just(ABSENT), GOOD_TIMES, HOSTILE), st.one_of(st.just(ABSENT), BAD_TIMES))
    props = draw(properties("properties" in bad))
    if props is not ABSENT:
        msg["properties"] = props
    extra = {"name": TEXT, "previousId": HOSTILE, "traits": JSON, "context": JSON, "integrations": JSON}
    for key, strategy in extra.items():
        if draw(st.booleans()):
            put(key, strategy, HOSTILE, "extra")
    if "extra" in bad:
        msg.update(draw(st.dictionaries(TEXT, st.one_of(JSON, deep(), LONG_TEXT), max_size=3)))
        if draw(st.integers(0, 4)) == 0:
            msg["context"] = {"pad": "x" * draw(st.sampled_from([60_000, 65_000, 70_000]))}
    order = draw(st.permutations(list(msg)))
    return {k: msg[k] for k in order}
