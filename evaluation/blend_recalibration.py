"""The recommendation blend recalibrated by replay, on the same history and time split as the thresholds.

Each candidate (a partial override of the blend in force) runs one test-then-learn replay of the
history's product events through the job's recommender (``operators.recommender``): before an event
(user u, item i) is learned, u's top 10 scores a hit if it holds i. Recall@10 on the earlier part chooses;
the held-out later part validates the choice against the blend in force, which it must beat by the
plan's relative margin. The replays pass no segments (the same for every candidate), so the absolute
recall is a little below what ``tailor evaluate`` reports; the comparison is like for like.

>>> base = RecommenderConfig()
>>> label({"covisit": 2.0}), blend_of(base.with_live_settings({"blend": {"covisit": 2.0}}))["covisit"]
('covisit=2', 2.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evaluation.recalibration import History
from operators.recommender import HybridRecommender, RecommenderConfig

BLEND = ("mf", "content", "recent", "popular", "covisit")
K = 10
IN_FORCE = "in force"


@dataclass(frozen=True)
class BlendProposal:
    blends: dict[str, dict[str, float]]  # label -> the whole blend; IN_FORCE first
    train: dict[str, float]  # label -> Recall@10 on the earlier part
    test: dict[str, float]  # label -> Recall@10 on the held-out part (shown, never used to choose)
    tests: tuple[int, int]  # events tested on the earlier and on the held-out part
    best: str
    decision: str  # "apply", "keep: <why>"

    @property
    def gain(self) -> float:
        """Relative held-out gain of the chosen blend over the one in force."""
        current = self.test[IN_FORCE]
        return self.test[self.best] / current - 1 if current else 0.0

    def settings(self) -> dict[str, Any]:
        """The live model settings to apply (``tailor rules apply``'s ``models``)."""
        return {"blend": self.blends[self.best]}


def blend_of(config: RecommenderConfig) -> dict[str, float]:
    return {name: getattr(config, f"blend_{name}") for name in BLEND}


def label(overrides: dict[str, Any]) -> str:
    return ",".join(f"{name}={value:g}" for name, value in overrides.items())


def recall_in_parts(history: History, config: RecommenderConfig, split: int) -> tuple[float, float, int, int]:
    """Recall@10 of a test-then-learn replay before and from ``split``, and the events tested in each."""
    recommender = HybridRecommender(config)
    hits, tested = [0, 0], [0, 0]
    for ts, _raw, event in history.events:
        if event.item_id is None:
            continue
        part = ts >= split
        top = recommender.recommend(event.user_key, k=K, now=ts)
        tested[part] += 1
        hits[part] += any(r.item_id == event.item_id for r in top)
        recommender.learn_one(event.user_key, event.item_id, event.name, ts, event.category)
    return (hits[0] / tested[0] if tested[0] else 0.0, hits[1] / tested[1] if tested[1] else 0.0,
            tested[0], tested[1])


def propose_blend(
    history: History, base: RecommenderConfig, candidates: list[dict[str, Any]], holdout: float, margin: float,
    progress: Any = None,
) -> BlendProposal:
    """Replay every candidate (and the blend in force: ``base`` with the history's live settings)."""
    in_force = base.with_live_settings(history.models) if history.models else base
    configs = {IN_FORCE: in_force, **{label(c): in_force.with_live_settings({"blend": c}) for c in candidates}}
    split = history.first_ms + int((1 - holdout) * (history.last_ms - history.first_ms))
    train, test, tests = {}, {}, (0, 0)
    for name, config in configs.items():
        train[name], test[name], *counts = recall_in_parts(history, config, split)
        tests = (counts[0], counts[1])
        if progress is not None:
            progress(name)
    top = max(train.values())
    best = IN_FORCE if train[IN_FORCE] == top else next(n for n in configs if train[n] == top)
    proposal = BlendProposal({n: blend_of(c) for n, c in configs.items()}, train, test, tests, best, "")
    if best == IN_FORCE:
        decision = "keep: the blend in force scores best on the earlier part"
    elif proposal.gain < margin:
        decision = f"keep: held-out Recall@10 gain {proposal.gain:+.1%} is below the margin {margin:.0%}"
    else:
        decision = "apply"
    return BlendProposal(proposal.blends, train, test, tests, best, decision)
