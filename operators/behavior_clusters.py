"""ML segments: online clustering of behavior feature vectors, with stable human-readable names.

``BehaviorClusterer`` standardizes each feature vector online (Welford mean / variance per feature) and
feeds the z-scores to a River clusterer (``KMeans`` by default; ``STREAMKMeans`` and ``DBSTREAM`` are
selectable; ``tailor evaluate clusters`` compares them on Taobao). Three phases:

* **warm-up**: the first ``warmup_events`` only train the scaler (and keep ``seed_points`` of them, evenly
  spaced); then the (STREAM)KMeans centers are seeded on those points (River's random Gaussian centers
  leave some clusters empty forever): ``seed_restarts`` greedy k-means++ runs, each refined by
  ``seed_iterations`` Lloyd iterations, the lowest inertia wins. One k-means++ draw decided how the big
  casual group was split from the engaged users, so two seeds (or two event orders) gave two different
  segmentations; the best of several refined runs lands on the same split (full Taobao: ARI run vs run
  0.88 -> 1.0). The next ``warmup_events`` train the model; ``predict_one`` returns ``None`` until the
  first labeling;
* **learning** (KMeans): MacQueen's sequential k-means: the closest center moves ``1/n`` of the way to the
  point, ``n`` = points it has absorbed (a seeded center starts at ``seed_weight`` x the seed points it
  holds), never less than ``halflife``, so a center is the running mean of its points early on and can
  still follow drift later. The counts are part of the payload: a restore continues exactly;
* **labeling**: each cluster is named after the z-scores that stand out in its centroid ("Cart Fillers":
  cart rate high) by matching centroids to name prototypes (Hungarian assignment, unique names);
* **relabel** every ``relabel_every_events`` model updates or ``relabel_every`` of event time: the new
  centroids are matched to the previous named ones (Hungarian on centroid distance) and keep their
  names unless one moved further than ``rename_distance``; only clusters without a close predecessor get
  a fresh name. Labels therefore do not churn when the model is refit.

``explain(name)`` gives the centroid's z-scores as of the last labeling: what the segment-change events
carry as their reason and facts (``operators.cluster_segments``).

>>> from operators.behavior_features import FEATURE_NAMES
>>> c = BehaviorClusterer(ClusteringConfig(n_clusters=2, warmup_events=20, halflife=0.2))
>>> buyer = dict.fromkeys(FEATURE_NAMES, 0.0) | {"purchases_per_session": 1.0, "events": 1.0}
>>> viewer = dict.fromkeys(FEATURE_NAMES, 0.0) | {"views_per_session": 3.0, "categories": 2.0}
>>> for t in range(60):
...     c.learn_one(buyer if t % 2 else viewer, now=t)
>>> c.predict_one(buyer), c.predict_one(viewer)
('Frequent Shoppers', 'Explorers')
>>> c.explain("Explorers")["views_per_session"] > 0.5   # centroid z-score: well above average
True
"""

from __future__ import annotations

import base64
import math
import pickle
import random
from collections.abc import Container
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import river
from numpy.typing import NDArray
from river import cluster
from scipy.optimize import linear_sum_assignment

from operators.behavior_features import FEATURE_NAMES
from operators.segment_rules import RuleError, parse_duration
from settings.errors import TailorError
from state_schemas import cluster_model
from state_schemas.cluster_model import ALGORITHMS, ClusterModel, ClusterModelError

# Name -> the z-score direction it stands for. A cluster's score for a name is its centroid's projection
# on that (unit) direction; names are assigned to maximize the total score, each name used once. The
# average-looking cluster gets "Casual Visitors", which scores CASUAL_SCORE whatever the centroid.
NAME_PROTOTYPES: dict[str, dict[str, float]] = {
    "Frequent Shoppers": {"purchases_per_session": 1.0, "events": 0.6, "sessions": 0.3},
    "Cart Fillers": {"cart_rate": 1.0, "purchases_per_session": -0.3},
    "Wishlisters": {"fav_rate": 1.0},
    "Browsers": {"views_per_session": 1.0, "events": 0.5, "cart_rate": -0.3, "purchases_per_session": -0.3},
    "Loyal Customers": {"sessions": 1.0, "tenure_hours": 0.5, "purchases_per_session": 0.4},
    "Explorers": {"categories": 1.0, "views_per_session": 0.4},
    # Long visits beyond what tenure explains: a user back for many sessions has long tenure too, and is
    # a "Returning Visitor" first (tenure and sessions stand out more than minutes per session).
    "Long-Session Visitors": {"session_minutes": 1.0, "tenure_hours": -0.5},
    "Returning Visitors": {"tenure_hours": 1.0, "sessions": 0.5},
    "One-off Visitors": {"events": -1.0, "sessions": -0.5, "categories": -0.5, "session_minutes": -0.5,
                         "tenure_hours": -0.5},
    "Quick Buyers": {"purchases_per_session": 1.0, "events": -0.6},
    "Casual Visitors": {},
}
CASUAL_SCORE = 0.75



class ClusteringError(TailorError):
    """Bad ``clustering:`` settings in config/models.yaml."""


@dataclass(frozen=True, slots=True)
class ClusteringConfig:
    algorithm: str = "kmeans"
    n_clusters: int = 5
    seed: int = 42
    warmup_events: int = 1_000  # scaler-only events, then as many model updates before the first labels
    halflife: float = 0.0005  # KMeans: floor of the per-center step 1/n; STREAMKMeans: the (constant) step
    sequential: bool = True  # KMeans: MacQueen steps (1/points absorbed, floored at halflife); False = constant
    seed_points: int = 256  # warm-up points kept for the seeding
    seed_restarts: int = 5  # k-means++ runs on the seed points (each refined by Lloyd); the lowest inertia wins
    seed_iterations: int = 10  # Lloyd iterations refining each k-means++ run on the seed points
    seed_weight: float = 1.0  # KMeans: points a seeded center counts as absorbed, per seed point it holds
    sigma: float = 1.0  # KMeans: spread of the random initial centers (z units)
    chunk_size: int = 100  # STREAMKMeans
    clustering_threshold: float = 1.5  # DBSTREAM micro-cluster radius (z units)
    fading_factor: float = 0.001  # DBSTREAM
    cleanup_interval: int = 1_000  # DBSTREAM
    relabel_every_events: int = 10_000  # model updates between relabels (0 = never by count)
    relabel_every_ms: int = 7 * 86_400_000  # event time between relabels (0 = never by time)
    rename_distance: float = 2.0  # a relabeled centroid further than this from its predecessor is renamed
    hysteresis: float = 1.0  # a user switches cluster only when the new one is this much closer (z units)
    # Inputs waiting for the watermark (the hub learns in event-time order), at most; beyond, the oldest
    # are learned at once: bounds memory and state while a partition stalls the watermark.
    max_waiting: int = 100_000

    @classmethod
    def from_dict(cls, section: dict[str, Any]) -> ClusteringConfig:
        """Settings from the ``clustering:`` section; missing keys keep their defaults.

        >>> ClusteringConfig.from_dict({"algorithm": "dbstream", "relabel_every": "1d"}).relabel_every_ms
        86400000
        >>> ClusteringConfig.from_dict({"n_cluster": 3})
        Traceback (most recent call last):
        ...
        operators.behavior_clusters.ClusteringError: clustering.n_cluster is not a setting; known: algorithm, chunk_size, cleanup_interval, clustering_threshold, fading_factor, halflife, hysteresis, max_waiting, n_clusters, relabel_every, relabel_every_events, rename_distance, seed, seed_iterations, seed_points, seed_restarts, seed_weight, sequential, sigma, warmup_events
        """  # noqa: E501 (a doctest's expected output cannot wrap)
        if not isinstance(section, dict):
            raise ClusteringError(f"clustering must be a mapping; got {type(section).__name__}")
        known = {f.name for f in fields(cls)} - {"relabel_every_ms"} | {"relabel_every"}
        defaults: dict[str, Any] = {f.name: f.default for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in section.items():
            if key not in known:
                raise ClusteringError(f"clustering.{key} is not a setting; known: {', '.join(sorted(known))}")
            if key == "relabel_every":
                try:
                    values["relabel_every_ms"] = 0 if value in (0, "never") else parse_duration(value, key)
                except RuleError as exc:
                    raise ClusteringError(f"clustering.{exc}") from None
                continue
            default = defaults[key]
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ClusteringError(f"clustering.{key} must be true or false; got {value!r}")
            elif isinstance(default, str):
                if value not in ALGORITHMS:
                    raise ClusteringError(f"clustering.algorithm must be one of {', '.join(ALGORITHMS)}; got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ClusteringError(f"clustering.{key} must be a non-negative number; got {value!r}")
            elif isinstance(default, int) and value != int(value):
                raise ClusteringError(f"clustering.{key} must be a whole number; got {value!r}")
            values[key] = type(default)(value)
        config = cls(**values)
        if min(config.n_clusters, config.chunk_size, config.warmup_events, config.seed_points) < 1:
            raise ClusteringError("clustering.n_clusters, chunk_size, warmup_events and seed_points must be at least 1")
        return config


class BehaviorClusterer:
    def __init__(self, config: ClusteringConfig) -> None:
        self.config = config
        self.features = FEATURE_NAMES
        n = len(self.features)
        self.events_seen = 0
        self.model_updates = 0
        self._relabeled_at = (0, 0)  # (model updates, event time) of the last labeling
        self._count = 0
        self._mean = [0.0] * n
        self._m2 = [0.0] * n
        self._named: list[tuple[str, int, list[float]]] = []  # (name, model cluster id, centroid z)
        self._name_of: dict[int, str] = {}
        self._seed_points: list[list[float]] = []  # raw warm-up vectors for the k-means++ seeding
        self._absorbed = [0.0] * config.n_clusters  # KMeans: points each center has absorbed (its step is 1/n)
        self.model = self._new_model()
        # The hub learns, predicts and checks the hysteresis on one vector with the same scaler: scale it
        # once (measured: three scalings were a fifth of the clustering's time). Reset whenever the scaler moves.
        self._scaled: tuple[list[float], dict[str, float]] | None = None
        self._stepped: tuple[dict[str, float], list[int], list[float]] | None = None  # the last step's distances
        self._descriptions: tuple[list[tuple[str, int, list[float]]], dict[tuple[str, int], str]] = ([], {})

    # -- verbs -------------------------------------------------------------------------------------
    def learn_one(self, features: dict[str, float], now: int) -> None:
        """Learn one feature vector at event time ``now`` (relabels when the schedule says so)."""
        self.events_seen += 1
        x = [features.get(f, 0.0) for f in self.features]
        self._scaled = self._stepped = None
        self._count += 1
        for i, v in enumerate(x):
            delta = v - self._mean[i]
            self._mean[i] += delta / self._count
            self._m2[i] += delta * (v - self._mean[i])
        cfg = self.config
        if self.events_seen <= cfg.warmup_events:
            if self.events_seen % max(1, cfg.warmup_events // cfg.seed_points) == 0:
                self._seed_points.append(x)
            return
        if self._seed_points:
            self._seed_centers()
        z = self._scaled_vector(x)
        if cfg.algorithm == "kmeans" and cfg.sequential:
            self._step_closest(z)
        else:
            self.model.learn_one(z)
        self.model_updates += 1
        done, at = self._relabeled_at
        if not self._named:
            if self.model_updates >= cfg.warmup_events:
                self.relabel(now)
        elif (cfg.relabel_every_events and self.model_updates - done >= cfg.relabel_every_events) or (
            cfg.relabel_every_ms and now - at >= cfg.relabel_every_ms
        ):
            self.relabel(now)

    def predict_one(self, features: dict[str, float]) -> str | None:
        """The stable name of the cluster ``features`` belong to; ``None`` while warming up."""
        if not self._named:
            return None
        z = self._scaled_vector([features.get(f, 0.0) for f in self.features])
        cid = self._closest(z) if self.config.algorithm == "kmeans" else self.model.predict_one(z)
        if self.config.algorithm != "dbstream":
            return self._name_of[cid]
        # DBSTREAM renumbers its clusters on every recluster: go through the cluster's center instead.
        center = self.model.centers.get(cid)
        return self._nearest(self._vector(center) if center else self._vector(z))

    def explain(self, name: str) -> dict[str, float]:
        """Feature -> z-score of the cluster's centroid (as of the last labeling)."""
        for named, _, z in self._named:
            if named == name:
                return dict(zip(self.features, z, strict=False))  # z may come from a restored payload
        raise KeyError(f"no cluster named {name!r}; clusters are {self.names()}")

    def describe(self, name: str, top: int = 3) -> str:
        """One line for people: the z-scores that stand out (kept until the next labeling: every cluster
        change carries it).

        >>> c = BehaviorClusterer(ClusteringConfig())
        >>> c._named = [("Cart Fillers", 0, [0.1, 0, 0, -0.2, 2.31, 0, -0.6, 0, 0])]
        >>> c.describe("Cart Fillers")
        'Cart Fillers: cart rate +2.3σ, purchases per session -0.6σ, views per session -0.2σ vs all users'
        """
        labeling, described = self._descriptions
        if labeling is not self._named:  # relabeled (or restored) since: the centroids moved
            described = {}
            self._descriptions = (self._named, described)
        line = described.get((name, top))
        if line is None:
            z = self.explain(name)
            parts = [f"{f.replace('_', ' ')} {v:+.1f}σ" for f, v in sorted(z.items(), key=lambda kv: -abs(kv[1]))[:top]]
            line = described[name, top] = f"{name}: {', '.join(parts)} vs all users"
        return line

    def names(self) -> list[str]:
        return [name for name, _, _ in self._named]

    def distances(self, features: dict[str, float], names: Container[str] | None = None) -> dict[str, float]:
        """Euclidean distance (z units) from ``features`` to each named cluster's current center (of
        ``names`` only, if given)."""
        z = self._vector(self._scaled_vector([features.get(f, 0.0) for f in self.features]))
        live = self.model.centers if self.config.algorithm != "dbstream" else {}
        return {
            name: math.dist(z, self._vector(live[i]) if i in live else c)
            for name, i, c in self._named if names is None or name in names
        }

    # -- relabel -----------------------------------------------------------------------------------
    def relabel(self, now: int) -> None:
        """Name the current clusters, keeping the names of those close to a previously named one."""
        centers = self._model_centers()
        self._relabeled_at = (self.model_updates, now)
        if not centers:
            return
        ids = sorted(centers)
        new = np.array([centers[i] for i in ids])
        names: dict[int, str] = {}
        if self._named:
            old = np.array([z for _, _, z in self._named])
            cost = np.linalg.norm(new[:, None, :] - old[None, :, :], axis=2)
            for r, c in zip(*linear_sum_assignment(cost), strict=True):
                if cost[r, c] <= self.config.rename_distance:
                    names[ids[r]] = self._named[c][0]
        fresh = [i for i in ids if i not in names]
        if fresh:
            free = [n for n in NAME_PROTOTYPES if n not in names.values()]
            proto = np.array([[NAME_PROTOTYPES[n].get(f, 0.0) for f in self.features] for n in free])
            norms = np.linalg.norm(proto, axis=1, keepdims=True)
            proto /= np.maximum(norms, 1e-9)
            score = np.array([centers[i] for i in fresh]) @ proto.T
            score[:, norms[:, 0] == 0] = CASUAL_SCORE
            rows, cols = linear_sum_assignment(-score)
            for r, c in zip(rows, cols, strict=True):
                names[fresh[r]] = free[c]
            taken = set(names.values())
            for i in fresh:  # more clusters than names
                if i not in names:
                    names[i] = next(f"Segment {k}" for k in range(1, len(ids) + 2) if f"Segment {k}" not in taken)
                    taken.add(names[i])
        self._named = [(names[i], i, [float(v) for v in centers[i]]) for i in ids]
        self._name_of = {i: names[i] for i in ids}

    # -- persistence -------------------------------------------------------------------------------
    def export_state(self) -> str:
        algorithm = self.config.algorithm
        if algorithm == "kmeans":
            model: dict[str, Any] = {"centers": self._centers_of(self.model), "absorbed": self._absorbed}
        elif algorithm == "streamkmeans":
            chunk = [self._vector(p) for p in self.model._temp_chunk.values()]
            model = {"centers": self._centers_of(self.model._kmeans), "time_stamp": self.model.time_stamp,
                     "chunk": chunk}
        else:
            model = {"pickle": base64.b64encode(pickle.dumps(self.model)).decode()}
        if self._seed_points:
            model["seed_points"] = self._seed_points
        return cluster_model.encode(ClusterModel(
            river.__version__, algorithm, len(self.features),
            (self.events_seen, self.model_updates, *self._relabeled_at),
            (self._count, tuple(self._mean), tuple(self._m2)),
            tuple((n, i, tuple(z)) for n, i, z in self._named), model,
        ))

    def import_state(self, payload: str) -> None:
        """Continue from an ``export_state`` payload (same algorithm, cluster count and features)."""
        m = cluster_model.decode(payload, river_version=river.__version__)
        if m.algorithm != self.config.algorithm or m.n_features != len(self.features):
            raise ClusterModelError(
                f"the stored clusterer is {m.algorithm} over {m.n_features} features, the configuration asks "
                f"for {self.config.algorithm} over {len(self.features)}: set clustering.algorithm back, or "
                "start the clusterer from scratch"
            )
        self.events_seen, self.model_updates, done, at = m.counters
        self._relabeled_at = (done, at)
        self._count, mean, m2 = m.scaler
        self._mean, self._m2 = list(mean), list(m2)
        self._scaled = self._stepped = None
        self._named = [(n, i, list(z)) for n, i, z in m.named]
        self._name_of = {i: n for n, i, _ in m.named}
        self.model = self._new_model()
        self._seed_points = [list(p) for p in m.model.get("seed_points", ())]
        if "pickle" in m.model:
            self.model = pickle.loads(base64.b64decode(m.model["pickle"]))
            return
        kmeans = self.model if m.algorithm == "kmeans" else self.model._kmeans
        if len(m.model["centers"]) != len(kmeans.centers):
            raise ClusterModelError(
                f"the stored clusterer has {len(m.model['centers'])} clusters, clustering.n_clusters is "
                f"{len(kmeans.centers)}: set it back, or start the clusterer from scratch"
            )
        for i, center in enumerate(m.model["centers"]):
            kmeans.centers[i].update(zip(self.features, center, strict=False))  # as stored
        # Payloads from before sequential steps have no counts: large ones keep their centers' constant step.
        settled = math.ceil(1 / self.config.halflife) if self.config.halflife > 0 else 0
        self._absorbed = [float(n) for n in m.model.get("absorbed", [settled] * len(kmeans.centers))]
        if m.algorithm == "streamkmeans":
            self.model.time_stamp = m.model["time_stamp"]
            self.model._temp_chunk = {
                i: dict(zip(self.features, p, strict=False)) for i, p in enumerate(m.model["chunk"])
            }
            self.model.centers = kmeans.centers

    # -- internals ---------------------------------------------------------------------------------
    def _new_model(self) -> Any:
        cfg = self.config
        if cfg.algorithm == "dbstream":
            return cluster.DBSTREAM(
                clustering_threshold=cfg.clustering_threshold, fading_factor=cfg.fading_factor,
                cleanup_interval=cfg.cleanup_interval,
            )
        kw: dict[str, Any] = {"halflife": cfg.halflife, "sigma": cfg.sigma, "seed": cfg.seed}
        model: cluster.KMeans | cluster.STREAMKMeans
        if cfg.algorithm == "kmeans":
            model = cluster.KMeans(n_clusters=cfg.n_clusters, **kw)
            kmeans = model
        else:
            model = cluster.STREAMKMeans(chunk_size=cfg.chunk_size, n_clusters=cfg.n_clusters, **kw)
            kmeans = model._kmeans
        # Draw every initial coordinate now, in a fixed order: River draws them lazily on first use, which
        # would make the model depend on when a feature first shows up, and the state on the RNG.
        for center in kmeans.centers.values():
            for f in self.features:
                center[f]  # the defaultdict draws on access
        if cfg.algorithm == "streamkmeans":
            model.centers = kmeans.centers
        return model

    def _step_closest(self, z: dict[str, float]) -> None:
        """MacQueen's sequential k-means step: the closest center moves 1/n of the way to ``z`` (n = points
        it has absorbed, this one included), never less than ``halflife`` so it can still follow drift."""
        ids, squared = self._squared_distances(z)
        at = _first_min(squared)
        closest = ids[at]
        n = self._absorbed[closest] = self._absorbed[closest] + 1.0
        rate = max(1.0 / n, self.config.halflife)
        center = self.model.centers[closest]
        for f, v in z.items():
            center[f] += rate * (v - center[f])
        # Only that center moved: predict_one of the same point needs its distance alone
        squared[at] = self._squared_distance(center, z)
        self._stepped = (z, ids, squared)

    def _closest(self, z: dict[str, float]) -> int:
        """River ``KMeans.predict_one`` (Euclidean, first of ties) without its per-center key-set union."""
        stepped = self._stepped
        if stepped is not None and stepped[0] is z:
            return stepped[1][_first_min(stepped[2])]
        ids, squared = self._squared_distances(z)
        return ids[_first_min(squared)]

    def _squared_distances(self, z: dict[str, float]) -> tuple[list[int], list[float]]:
        """(center ids, squared distance of ``z`` to each)."""
        centers = self.model.centers
        ids = list(centers)
        return ids, [self._squared_distance(centers[i], z) for i in ids]

    @staticmethod
    def _squared_distance(center: dict[str, float], z: dict[str, float]) -> float:
        d = 0.0
        for f, v in z.items():
            d += (center[f] - v) ** 2
        return d

    def _seed_centers(self) -> None:
        """k-means++ over the warm-up points, deterministic given the seed."""
        points, self._seed_points = [self._vector(self._scale(p)) for p in self._seed_points], []
        cfg = self.config
        if cfg.algorithm == "dbstream":
            return
        kmeans = self.model if cfg.algorithm == "kmeans" else self.model._kmeans
        rng = random.Random(cfg.seed)
        x = np.array(points)
        k = len(kmeans.centers)
        best: tuple[float, NDArray[np.float64], NDArray[np.intp]] | None = None
        for _ in range(max(1, cfg.seed_restarts)):
            centers = self._kmeans_pp(x, k, rng)
            for _ in range(cfg.seed_iterations):  # Lloyd on the seed points
                nearest = self._nearest_rows(x, centers)
                for c in range(len(centers)):
                    if (nearest == c).any():
                        centers[c] = x[nearest == c].mean(0)
            nearest = self._nearest_rows(x, centers)
            inertia = float(((x - centers[nearest]) ** 2).sum())
            if best is None or inertia < best[0]:
                best = (inertia, centers, nearest)
        assert best is not None
        _, centers, nearest = best
        held = np.bincount(nearest, minlength=k)
        for i, center in enumerate(centers):
            kmeans.centers[i].update(zip(self.features, (float(v) for v in center), strict=True))
            self._absorbed[i] = float(held[i]) * cfg.seed_weight

    @staticmethod
    def _kmeans_pp(x: NDArray[np.float64], k: int, rng: random.Random) -> NDArray[np.float64]:
        # Greedy k-means++ (several D²-sampled candidates per step, keep the one that lowers the potential
        # most): plain k-means++ often misses one of the small, well-separated groups (cart-only users).
        chosen = [rng.randrange(len(x))]
        d2 = ((x - x[chosen[0]]) ** 2).sum(1)
        trials = 2 + int(math.log(k))
        while len(chosen) < k and d2.sum() > 0:
            cumulative = np.cumsum(d2)
            picks = [int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
                     for _ in range(trials)]
            picks = [min(i, len(x) - 1) for i in picks]
            options = [np.minimum(d2, ((x - x[i]) ** 2).sum(1)) for i in picks]
            best = min(range(trials), key=lambda t: options[t].sum())
            chosen.append(picks[best])
            d2 = options[best]
        return x[chosen].copy()

    @staticmethod
    def _nearest_rows(x: NDArray[np.float64], centers: NDArray[np.float64]) -> NDArray[np.intp]:
        nearest: NDArray[np.intp] = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(2).argmin(1)
        return nearest

    def _scaled_vector(self, x: list[float]) -> dict[str, float]:
        """``_scale(x)``, computed once per vector while the scaler stays put."""
        scaled = self._scaled
        if scaled is not None and scaled[0] == x:
            return scaled[1]
        z = self._scale(x)
        self._scaled = (x, z)
        return z

    def _scale(self, x: list[float]) -> dict[str, float]:
        n = self._count or 1
        out = {}
        for f, v, mean, m2 in zip(self.features, x, self._mean, self._m2, strict=True):
            var = m2 / n
            out[f] = (v - mean) / math.sqrt(var) if var > 0 else 0.0
        return out

    def _vector(self, point: dict[str, float]) -> list[float]:
        return [float(point.get(f, 0.0)) for f in self.features]

    def _centers_of(self, kmeans: Any) -> list[list[float]]:
        return [self._vector(kmeans.centers[i]) for i in sorted(kmeans.centers)]

    def _model_centers(self) -> dict[int, list[float]]:
        centers = self.model.centers
        return {i: self._vector(c) for i, c in centers.items()}

    def _nearest(self, z: list[float]) -> str:
        return min(self._named, key=lambda named: math.dist(z, named[2]))[0]


def _first_min(values: list[float]) -> int:
    """Index of the smallest value, the first of ties (NaN never wins, as in River's loop)."""
    best, best_v = 0, math.inf
    for i, v in enumerate(values):
        if v < best_v:
            best, best_v = i, v
    return best
