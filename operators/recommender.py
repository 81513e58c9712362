"""Hybrid top-K recommendations, learned one interaction at a time: MF + content + popularity.

``HybridRecommender`` owns three models and the per-user memory that ties them together:

* ``operators.matrix_factorization`` -- River's ``BiasedMF`` rule on implicit feedback (event weights),
  positive-only by default; optional negative sampling (a few random known items learned with target
  0) measured no better on Taobao and costs two more updates and two more item writes per event;
* ``operators.content_similarity`` -- TF-IDF neighbours of the user's recent items (catalog metadata);
* ``operators.popularity`` -- time-decayed trending items overall, per segment and per category.

**Candidates, then ranking.** Scoring every item per event would not scale, so ``recommend`` builds a
bounded pool -- the user's recent items, content neighbours of them, items trending in their categories,
in their segments and overall -- and ranks it by a blend of normalized features::

    score = w_mf * confidence * mf  +  w_content * content  +  w_recent * recent  +  w_popular * popular

``confidence`` grows with the user's interactions (``warm_after``), so cold users lean on content and
popularity, and a user with no history gets the trending list. Each item's ``source`` is the part that
contributed most: ``mf``, ``content`` (content similarity or the user's own recent, not purchased,
items) or ``popular``. Purchased items are excluded; an optional category constrains the list.

**State.** Everything is per user or per item (plus a few globals), exported and imported one id at a
time (``state_schemas.recommender_state``); ``take_dirty`` says what changed since the last call and
``take_evicted`` what the LRU caps dropped, so the caller persists incrementally. Restoring all payloads
into a fresh instance continues exactly like the original.

>>> rec = HybridRecommender(RecommenderConfig(k=3, min_emit_interval_ms=0))
>>> for user, item in [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x")]:
...     rec.learn_one(user, item, "product_viewed", timestamp=1_000)
>>> [(r.item_id, r.source) for r in rec.recommend("new-user", now=2_000)]
[('x', 'popular'), ('y', 'popular')]
>>> rec.learn_one("c", "x", "order_completed", timestamp=2_000)
>>> [r.item_id for r in rec.recommend("c", now=3_000)]
['y']
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import orjson
import river

from operators.content_similarity import ContentIndex
from operators.matrix_factorization import KINDS, MatrixFactorization
from operators.next_item_baselines import ItemCoOccurrence
from operators.popularity import DecayedPopularity
from settings.errors import TailorError
from state_schemas import recommender_state as rs
from state_schemas.catalog_item import CatalogItem
from state_schemas.events import ORDER_COMPLETED
from state_schemas.model_update import InteractionUpdate, ItemStep
from state_schemas.recommendation import RecommendedItem

FEEDBACK_MODES = ("negative_sampling", "positive_only")
_SOURCES = ("mf", "content", "popular", "covisit")
_MASK = (1 << 64) - 1


class _Excluded:
    """Membership in either of two collections, without copying them per call."""

    __slots__ = ("first", "second")

    def __init__(self, first: Iterable[str], second: Container[str]) -> None:
        self.first, self.second = set(first), second

    def __contains__(self, item: object) -> bool:
        return item in self.first or item in self.second


class RecommenderConfigError(TailorError, ValueError):
    """A ``recommendations:`` setting is unknown or malformed."""


def _default_event_weights() -> dict[str, float]:
    return {"product_viewed": 1.0, "product_favorited": 2.0, "product_added": 3.0, "order_completed": 4.0}


@dataclass(frozen=True)
class RecommenderConfig:
    k: int = 10
    event_weights: Mapping[str, float] = field(default_factory=_default_event_weights)
    # matrix factorization (YAML section ``mf``)
    mf_kind: str = "biased"
    mf_feedback: str = "positive_only"
    mf_negatives: int = 2
    mf_n_factors: int = 20
    mf_lr_bias: float = 0.025
    mf_lr_latent: float = 0.07
    mf_l2_bias: float = 0.0
    mf_l2_latent: float = 0.1
    mf_init_sigma: float = 0.1
    mf_seed: int = 73
    mf_steps: int = 1
    mf_lr_decay: float = 0.0
    # blend weights (YAML section ``blend``)
    blend_mf: float = 0.25
    blend_content: float = 1.0
    blend_recent: float = 1.0
    blend_popular: float = 0.5
    blend_covisit: float = 1.0
    warm_after: int = 5
    half_life_ms: int = 3_600_000
    # bounds: memory (LRU caps) and work per call (candidate pool)
    max_users: int = 100_000
    max_items: int = 100_000
    max_recent: int = 20
    max_purchased: int = 50
    pool_popular: int = 30
    pool_category: int = 20
    pool_content: int = 30
    pool_covisit: int = 30
    covisit_window: int = 5
    covisit_neighbours: int = 50
    content_postings: int = 200
    popular_board: int = 100
    segment_cap: int = 1000
    min_emit_interval_ms: int = 60_000
    # A user with no interaction yet gets the trending list of their segments as a list of their own;
    # False: none until their first interaction (serving answers the job's trending list meanwhile)
    lists_before_first_interaction: bool = True

    _SECTIONS: ClassVar[dict[str, str]] = {"mf": "mf_", "blend": "blend_"}

    @classmethod
    def from_dict(cls, section: Mapping[str, Any]) -> RecommenderConfig:
        """The ``recommendations:`` section of ``config/models.yaml``; missing keys take the defaults.

        >>> RecommenderConfig.from_dict({"k": 5, "mf": {"n_factors": 4}}).mf_n_factors
        4
        >>> RecommenderConfig.from_dict({"mf": {"factors": 4}})
        Traceback (most recent call last):
        ...
        operators.recommender.RecommenderConfigError: recommendations.mf.factors is not a setting; known: mf.feedback, mf.init_sigma, mf.kind, mf.l2_bias, mf.l2_latent, mf.lr_bias, mf.lr_decay, mf.lr_latent, mf.n_factors, mf.negatives, mf.seed, mf.steps
        """  # noqa: E501 (a doctest's expected output cannot wrap)
        fields = {f.name: f for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        values: dict[str, Any] = {}
        for key, value in (section or {}).items():
            if key in cls._SECTIONS:
                prefix = cls._SECTIONS[key]
                if not isinstance(value, Mapping):
                    raise RecommenderConfigError(f"recommendations.{key} must be a mapping, got {value!r}")
                for sub, v in value.items():
                    if prefix + sub not in fields:
                        known = sorted(key + "." + n[len(prefix):] for n in fields if n.startswith(prefix))
                        raise RecommenderConfigError(
                            f"recommendations.{key}.{sub} is not a setting; known: {', '.join(known)}"
                        )
                    values[prefix + sub] = v
            elif key in fields and not any(key.startswith(p) for p in cls._SECTIONS.values()):
                values[key] = value
            else:
                known = sorted({n for n in fields if not any(n.startswith(p) for p in cls._SECTIONS.values())}
                               | set(cls._SECTIONS))
                raise RecommenderConfigError(f"recommendations.{key} is not a setting; known: {', '.join(known)}")
        return cls(**values)

    def with_live_settings(self, settings: Any) -> RecommenderConfig:
        """This config with the settings a running job may be given (``tailor recalibrate``): the blend only.
        The other settings shape model state (factors, caps), which a running job cannot change in place.

        >>> RecommenderConfig().with_live_settings({"blend": {"covisit": 2}}).blend_covisit
        2
        >>> RecommenderConfig().with_live_settings({"mf": {"n_factors": 8}})
        Traceback (most recent call last):
        ...
        operators.recommender.RecommenderConfigError: a running job takes only blend settings, got ['mf']
        """
        if not isinstance(settings, Mapping) or set(settings) - {"blend"}:
            keys = sorted(settings) if isinstance(settings, Mapping) else settings
            raise RecommenderConfigError(f"a running job takes only blend settings, got {keys!r}")
        blend = RecommenderConfig.from_dict({"blend": settings.get("blend", {})})  # checks names and values
        changed = {f"blend_{name}" for name in settings.get("blend", {})}
        return dataclasses.replace(self, **{name: getattr(blend, name) for name in changed})

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name.startswith("_") or f.name == "event_weights":
                continue
            value, default = getattr(self, f.name), f.default
            name = f.name.replace("mf_", "mf.", 1).replace("blend_", "blend.", 1)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise RecommenderConfigError(f"recommendations.{name} must be true or false; got {value!r}")
            elif isinstance(default, str):
                allowed = KINDS if f.name == "mf_kind" else FEEDBACK_MODES
                if value not in allowed:
                    raise RecommenderConfigError(
                        f"recommendations.{name} must be one of {', '.join(allowed)}; got {value!r}"
                    )
            elif isinstance(default, int) and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise RecommenderConfigError(f"recommendations.{name} must be a non-negative integer; got {value!r}")
            elif isinstance(default, float) and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                raise RecommenderConfigError(f"recommendations.{name} must be a non-negative number; got {value!r}")
        for name in ("k", "half_life_ms", "max_users", "max_items", "mf_n_factors", "mf_steps"):
            if getattr(self, name) == 0:
                raise RecommenderConfigError(f"recommendations.{name.replace('mf_', 'mf.')} must be > 0")
        weights = self.event_weights
        if not isinstance(weights, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
            for k, v in weights.items()
        ):
            raise RecommenderConfigError(
                f"recommendations.event_weights must map event names to non-negative numbers; got {weights!r}"
            )

    @property
    def digest(self) -> str:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}
        data["event_weights"] = dict(sorted(self.event_weights.items()))
        return hashlib.blake2b(orjson.dumps(data, option=orjson.OPT_SORT_KEYS), digest_size=4).hexdigest()


class HybridRecommender:
    def __init__(self, config: RecommenderConfig) -> None:
        c = self.config = self._base_config = config
        self._config_hash = c.digest
        self.model_version = self._base_version = f"mf-{c.mf_kind}/river-{river.__version__}/cfg-{self._config_hash}"
        self._tuned: list[Any] | None = None  # [applied_at, live settings] (retune), over the config file's
        self.mf = MatrixFactorization(
            c.mf_kind, c.mf_n_factors, c.mf_lr_bias, c.mf_lr_latent, c.mf_l2_bias, c.mf_l2_latent,
            c.mf_init_sigma, c.mf_seed, steps=c.mf_steps, lr_decay=c.mf_lr_decay,
        )
        self.popularity = DecayedPopularity(c.half_life_ms, c.popular_board, c.segment_cap)
        self.content = ContentIndex(max_postings=c.content_postings)
        self.covisits = ItemCoOccurrence(c.covisit_window, c.covisit_neighbours, c.max_users)
        self.users: dict[str, rs.UserState] = {}
        self.items: dict[str, rs.ItemState] = {}
        self._known: list[str | None] = []  # items by ItemState.pos, for uniform negative sampling
        self._rng = c.mf_seed & _MASK
        self._clock = 0
        self._catalog_clock = 0
        self._pending_catalog: list[tuple[int, CatalogItem]] = []
        self._dirty_users: set[str] = set()
        self._dirty_items: set[str] = set()
        self._evicted_users: set[str] = set()
        self._evicted_items: set[str] = set()

    # -- learning ----------------------------------------------------------------------------------
    def add_catalog_item(self, item: CatalogItem) -> None:
        self._flush_catalog()
        state = self._touch_item(item.item_id)
        self._catalog_clock += 1
        state.catalog = (self._catalog_clock, item.title, item.category, item.tags)
        self.content.add(item)
        self._evict_items()

    def learn_one(
        self, user_id: str, item_id: str, event_name: str, timestamp: int, category: str | None = None,
        segments: Sequence[str] = (), rating: float | None = None,
    ) -> None:
        """Learn one interaction; ``rating`` (explicit feedback) overrides the event-type weight. The same as
        ``learn_user`` then ``apply_update`` of what it returned (bit for bit)."""
        update = self.learn_user(user_id, item_id, event_name, timestamp, category, segments, rating)
        if update is not None:
            self.apply_update(update)

    def learn_user(
        self, user_id: str, item_id: str, event_name: str, timestamp: int, category: str | None = None,
        segments: Sequence[str] = (), rating: float | None = None,
    ) -> InteractionUpdate | None:
        """Learn the user's side of one interaction (factors, recent and purchased items) and return the
        item side unapplied, for ``apply_update`` of every replica (``operators.model_updates``); None if
        the event type carries no weight. Reads item-side models, never changes them."""
        weight = self.config.event_weights.get(event_name, 0.0) if rating is None else rating
        if weight <= 0 and rating is None:
            return None
        user = self._touch_user(user_id)
        if user.n_events == 0:  # their first interaction: their first own list is due at once
            user.last_emit_ms = None
        user.n_events += 1
        steps = [(item_id, self.mf.user_step(user_id, item_id, weight))]
        if rating is None and self.config.mf_feedback == "negative_sampling":
            steps += self._learn_negatives(user_id, item_id, user, steps[0][1].mean)
        window: tuple[str, ...] = ()
        if self.config.covisit_window:
            window = tuple(dict.fromkeys(i for i, _ in reversed(user.recent)))[: self.config.covisit_window]
        user.recent.append((item_id, float(weight)))
        del user.recent[: -self.config.max_recent]
        if event_name == ORDER_COMPLETED and item_id not in user.purchased:
            user.purchased.append(item_id)
            del user.purchased[: -self.config.max_purchased]
        self._evict_users()
        return InteractionUpdate(item_id, timestamp, float(weight), category, tuple(segments), window, tuple(steps))

    def apply_update(self, update: InteractionUpdate) -> None:
        """Learn the item side of an interaction a replica learned (``learn_user``): matrix factorization's
        item steps, popularity, co-visitation."""
        item_id = update.item_id
        item = self._touch_item(item_id)
        if update.category is not None:
            item.category = update.category
        category = item.category or (item.catalog[2] if item.catalog else None)
        item.n_events += 1
        for stepped, step in update.mf:
            if stepped != item_id:  # a sampled negative: skipped if this replica evicted it meanwhile
                if stepped not in self.items:
                    continue
                self._dirty_items.add(stepped)
            self.mf.apply_item_step(stepped, step)
        trending_in = (*update.segments, "category:" + category) if category else update.segments
        self.popularity.learn_one(item_id, update.timestamp, update.weight, trending_in)
        self._dirty_items.update(self.popularity.take_dropped() & self.items.keys())
        if update.window:
            self._dirty_items.update(self.covisits.learn_context(item_id, update.window) & self.items.keys())
        self._evict_items()

    def _learn_negatives(
        self, user_id: str, item_id: str, user: rs.UserState, mean: tuple[float, float]
    ) -> list[tuple[str, ItemStep]]:
        if len(self._known) < 2:
            return []
        seen = {i for i, _ in user.recent}
        steps = []
        for _ in range(self.config.mf_negatives):
            negative = self._known[self._next_random() % len(self._known)]
            if negative is None or negative == item_id or negative in seen:
                continue
            step = self.mf.user_step(user_id, negative, 0.0, mean)
            steps.append((negative, step))
            mean = step.mean
        return steps

    def _next_random(self) -> int:
        """splitmix64: one integer of state, so the generator persists in the globals."""
        self._rng = z = (self._rng + 0x9E3779B97F4A7C15) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def _touch_user(self, user_id: str) -> rs.UserState:
        state = self.users.get(user_id)
        if state is None:
            state = self.users[user_id] = rs.UserState()
            self._evicted_users.discard(user_id)  # back before the caller saw it go: it is live again
        self._clock += 1
        state.seq = self._clock
        self._dirty_users.add(user_id)
        return state

    def _touch_item(self, item_id: str) -> rs.ItemState:
        state = self.items.get(item_id)
        if state is None:
            state = self.items[item_id] = rs.ItemState(pos=len(self._known))
            self._known.append(item_id)
            self._evicted_items.discard(item_id)
        self._clock += 1
        state.seq = self._clock
        self._dirty_items.add(item_id)
        return state

    # -- memory bounds -----------------------------------------------------------------------------
    def _evict_users(self) -> None:
        c = self.config
        if len(self.users) > c.max_users + max(1, c.max_users // 20):  # batched: amortized O(log n)
            for user_id in sorted(self.users, key=lambda u: self.users[u].seq)[: len(self.users) - c.max_users]:
                del self.users[user_id]
                self.mf.remove_user(user_id)
                self._evicted_users.add(user_id)
                self._dirty_users.discard(user_id)

    def _evict_items(self) -> None:
        c = self.config
        if len(self.items) > c.max_items + max(1, c.max_items // 20):
            for item_id in sorted(self.items, key=lambda i: self.items[i].seq)[: len(self.items) - c.max_items]:
                self._remove_item(item_id)

    def forget_user(self, user_id: str) -> None:
        """Drop the user's state and factors (persisted as a deletion by the caller, via ``take_evicted``)."""
        if self.users.pop(user_id, None) is not None:
            self.mf.remove_user(user_id)
            self._evicted_users.add(user_id)
        self._dirty_users.discard(user_id)

    def _remove_item(self, item_id: str) -> None:
        state = self.items.pop(item_id)
        last = self._known.pop()
        if last != item_id and last is not None:  # swap-remove: the last item takes the freed slot
            self._known[state.pos] = last
            self.items[last].pos = state.pos
            self._dirty_items.add(last)
        self.mf.remove_item(item_id)
        self.popularity.remove_item(item_id)
        self.content.remove(item_id)
        self.covisits.remove_item(item_id)
        self._evicted_items.add(item_id)
        self._dirty_items.discard(item_id)

    # -- recommending ------------------------------------------------------------------------------
    def recommend(
        self, user_id: str, k: int | None = None, now: int | None = None, segments: Sequence[str] = (),
        category: str | None = None, exclude: Container[str] = (),
    ) -> list[RecommendedItem]:
        """The user's top ``k``; never a purchased item, nor one in ``exclude``."""
        self._flush_catalog()
        c = self.config
        k = c.k if k is None else k
        user = self.users.get(user_id)
        purchased = set(user.purchased) if user else set()
        # a plain set when there is nothing else to exclude (the job): membership is tested per candidate
        excluded: Container[str] = _Excluded(purchased, exclude) if exclude else purchased
        features: dict[str, list[float]] = {}  # item -> [content, recent, popular, covisit]

        def feature(item: str) -> list[float]:
            f = features.get(item)
            if f is None:
                f = features[item] = [0.0, 0.0, 0.0, 0.0]
            return f

        def add_popular(ranked: list[tuple[str, float]], scale: float = 1.0) -> None:
            if ranked:
                top = ranked[0][1] or 1.0
                for item, score in ranked:  # feature(item), inlined: ~100 candidates per call
                    f = features.get(item)
                    value = scale * score / top
                    if f is None:
                        features[item] = [0.0, 0.0, value, 0.0]
                    elif value > f[2]:
                        f[2] = value

        categories: dict[str, float] = {}
        if user and user.recent:
            profile: dict[str, float] = {}
            total = 0.0
            for rank, (item, weight) in enumerate(reversed(user.recent)):
                w = weight * 0.8**rank  # the latest interactions say most about the next one
                profile[item] = profile.get(item, 0.0) + w
                total += w
                cat = self._category(item)
                if cat:
                    categories[cat] = categories.get(cat, 0.0) + w
            top_w = max(profile.values())
            for item, w in profile.items():
                if item not in excluded:
                    feature(item)[1] = w / top_w
            for item, sim in self.content.similar_to_profile(profile, c.pool_content, excluded):
                feature(item)[0] = sim
            covisited = self.covisits.similar_to_profile(profile, c.pool_covisit, excluded) if c.blend_covisit else []
            for item, score in covisited:
                if item in self.items:
                    feature(item)[3] = score / covisited[0][1]
            for cat, w in categories.items():
                share = w / total
                trending = self.popularity.top(c.pool_category, "category:" + cat, excluded, now)
                for item, _ in trending:  # an item of a category the user keeps coming back to
                    f = feature(item)
                    f[0] = max(f[0], share)
                add_popular(trending, share)
        if category is not None:
            add_popular(self.popularity.top(c.pool_category, "category:" + category, excluded, now))
        for segment in segments:
            add_popular(self.popularity.top(c.pool_popular, segment, excluded, now))
        add_popular(self.popularity.top(c.pool_popular, None, excluded, now))
        if category is not None:
            features = {i: f for i, f in features.items() if self._category(i) == category}
        if not features:
            return []
        items = list(features)
        columns = np.array(list(features.values()))  # content, recent, popular, covisit
        parts = np.empty((4, len(items)))  # per item: mf, content (+ recent), popular, covisit; argmax = source
        parts[0] = 0.0
        confidence = min(1.0, user.n_events / c.warm_after) if user and c.warm_after else (1.0 if user else 0.0)
        if confidence > 0 and c.blend_mf > 0 and self.mf.has_user(user_id):
            raw = self.mf.score_items(user_id, items)
            known = ~np.isnan(raw)
            if known.any():
                lo, hi = float(raw[known].min()), float(raw[known].max())
                span = hi - lo or 1.0
                parts[0, known] = c.blend_mf * confidence * (raw[known] - lo) / span
        parts[1] = c.blend_content * columns[:, 0] + c.blend_recent * columns[:, 1]
        parts[2] = c.blend_popular * columns[:, 2]
        parts[3] = c.blend_covisit * columns[:, 3]
        total = parts.sum(axis=0)
        if len(items) > k:  # the k best (and any tied with the k-th), then an exact sort with id tie-breaks
            kth = np.partition(total, len(items) - k)[len(items) - k]
            rows = np.flatnonzero(total >= kth).tolist()
        else:
            rows = list(range(len(items)))
        totals, best = total.tolist(), parts.argmax(axis=0).tolist()
        rows.sort(key=lambda r: (-totals[r], items[r]))
        return [RecommendedItem(items[r], totals[r], _SOURCES[best[r]], self._category(items[r])) for r in rows[:k]]

    def popular(self, k: int) -> list[RecommendedItem]:
        """The ``k`` items trending overall (time-decayed counts, relative to the leader), with categories:
        the generic list for users without one of their own."""
        return [RecommendedItem(item, score, "popular", self._category(item)) for item, score in self.popularity.top(k)]

    def _category(self, item_id: str) -> str | None:
        state = self.items.get(item_id)
        if state is None:
            return None
        return state.category or (state.catalog[2] if state.catalog else None)

    def recommend_if_due(self, user_id: str, now: int, segments: Sequence[str] = ()) -> list[RecommendedItem] | None:
        """The user's new list if ``min_emit_interval_ms`` passed since the last one and it changed, else None.
        A user without interactions (their list is the trending one of their segments) is throttled alike:
        the first list they get starts their state, which holds when it was emitted and nothing else; with
        ``lists_before_first_interaction`` off they get none until their first interaction.

        >>> rec = HybridRecommender(RecommenderConfig(k=2, lists_before_first_interaction=False))
        >>> rec.learn_one("a", "x", "product_viewed", timestamp=0)
        >>> rec.recommend_if_due("b", now=1), [i.item_id for i in rec.recommend_if_due("a", now=1)]
        (None, ['x'])
        """
        user = self.users.get(user_id)
        if not self.config.lists_before_first_interaction and (user is None or user.n_events == 0):
            return None
        if (
            user is not None and user.last_emit_ms is not None
            and now - user.last_emit_ms < self.config.min_emit_interval_ms
        ):
            return None
        items = self.recommend(user_id, now=now, segments=segments)
        if not items:
            return None
        ids = [i.item_id for i in items]
        if user is None:
            user = self._touch_user(user_id)
            self._evict_users()
        elif ids == user.last_emitted:
            return None
        user.last_emit_ms = now
        user.last_emitted = ids
        self._dirty_users.add(user_id)
        return items

    # -- persistence -------------------------------------------------------------------------------
    def take_dirty(self) -> tuple[set[str], set[str]]:
        users, items = self._dirty_users, self._dirty_items
        self._dirty_users, self._dirty_items = set(), set()
        return users, items

    def take_evicted(self) -> tuple[set[str], set[str]]:
        users, items = self._evicted_users, self._evicted_items
        self._evicted_users, self._evicted_items = set(), set()
        return users, items

    def export_user(self, user_id: str) -> str:
        """The user's payload; ``KeyError`` if the recommender does not know the user."""
        state = self.users[user_id]
        state.mf = self.mf.export_user(user_id)
        payload = rs.encode_user(state)
        state.mf = None  # the model holds the live copy
        return payload

    def import_user(self, user_id: str, payload: str) -> None:
        state = rs.decode_user(payload)
        if state.mf is not None:
            self.mf.import_user(user_id, state.mf)
        state.mf = None  # the model holds the live copy
        self.users[user_id] = state
        self._clock = max(self._clock, state.seq)  # state restored in parts: the clock stays ahead of all

    def export_item(self, item_id: str) -> str:
        state = self.items[item_id]
        state.mf = self.mf.export_item(item_id)
        state.popularity = self.popularity.export_item(item_id)
        state.occurrences, state.covisits = self.covisits.export_item(item_id)
        payload = rs.encode_item(state)
        state.mf, state.popularity, state.covisits = None, {}, {}
        return payload

    def import_item(self, item_id: str, payload: str) -> None:
        state = rs.decode_item(payload)
        if state.mf is not None:
            self.mf.import_item(item_id, state.mf)
        self.popularity.import_item(item_id, state.popularity)
        self.covisits.import_item(item_id, state.occurrences, state.covisits)
        state.mf, state.popularity, state.covisits = None, {}, {}
        if state.pos >= len(self._known):
            self._known.extend([None] * (state.pos + 1 - len(self._known)))
        self._known[state.pos] = item_id
        if state.catalog is not None:
            seq, title, category, tags = state.catalog
            self._pending_catalog.append((seq, CatalogItem(item_id, title, category, tags)))
        self.items[item_id] = state
        self._clock = max(self._clock, state.seq)

    def _flush_catalog(self) -> None:
        if self._pending_catalog:  # re-add restored catalog items in their original order
            for _, item in sorted(self._pending_catalog, key=lambda p: p[0]):
                self.content.add(item)
            self._pending_catalog.clear()

    def retune(self, settings: Mapping[str, Any], applied_at: int) -> bool:
        """Put live model settings (``RecommenderConfig.with_live_settings``) in force, if newer than the ones
        in force; the lists made from now on carry a ``model_version`` naming them. False: older, ignored."""
        if self._tuned is not None and applied_at <= self._tuned[0]:
            return False
        self.config = self._base_config.with_live_settings(settings)
        self._tuned = [applied_at, dict(settings)]
        digest = hashlib.blake2b(orjson.dumps(self._tuned[1], option=orjson.OPT_SORT_KEYS), digest_size=3).hexdigest()
        self.model_version = f"{self._base_version}/tuned-{digest}"
        return True

    def export_globals(self) -> str:
        return rs.encode_globals(rs.GlobalsState(
            river.__version__, self._config_hash, self.mf.export_globals(), self._rng, self._clock,
            self._catalog_clock, self._tuned,
        ))

    def import_globals(self, payload: str) -> None:
        g = rs.decode_globals(payload)
        self.mf.import_globals(g.mf)
        self._rng, self._clock, self._catalog_clock = g.rng, g.clock, g.catalog_clock
        if g.tuned is not None:
            self.retune(g.tuned[1], g.tuned[0])

