"""``config/models.yaml``, read and validated once into one typed object that travels to the job.

The CLI loads it before it starts or submits a job (so a typo fails there, with the file name, not on a
TaskManager at the first record); the job, the evaluations and the demo all take the loaded object.
Sections::

    clustering:       operators.behavior_clusters.ClusteringConfig
    recommendations:  operators.recommender.RecommenderConfig
    max_users:        users whose cluster the model hub remembers (LRU)
    movielens:        evaluation only: merged over ``recommendations`` by ``tailor evaluate movielens``
    version:          1

>>> cfg = ModelsConfig.from_dict({"clustering": {"n_clusters": 4}, "max_users": 10})
>>> cfg.clustering.n_clusters, cfg.max_users, cfg.recommendations.k
(4, 10, 10)
>>> ModelsConfig.from_dict({"clustring": {}})
Traceback (most recent call last):
...
operators.models_config.ModelsConfigError: 'clustring' is not a section of the models file; known: clustering, max_users, movielens, recommendations, version
"""  # noqa: E501 (a doctest's expected output cannot wrap)

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from operators.behavior_clusters import ClusteringConfig
from operators.recommender import RecommenderConfig
from settings.config_files import read_yaml_file
from settings.errors import TailorError

# Users whose cluster the hub remembers; the least recently seen are forgotten first (they re-enter a
# cluster on their next event). Bounds memory and state together with the recommender's own caps.
DEFAULT_MAX_USERS = 200_000
SECTIONS = ("clustering", "max_users", "movielens", "recommendations", "version")


class ModelsConfigError(TailorError):
    """The models file is malformed; the message names the file, the setting and what is expected."""


@dataclass(frozen=True)
class ModelsConfig:
    clustering: ClusteringConfig
    recommendations: RecommenderConfig
    max_users: int = DEFAULT_MAX_USERS
    # The validated mapping as read: evaluations derive variants from its sections (overrides, the
    # movielens block); pickled with the object, so a job carries what its config was built from.
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: Any) -> ModelsConfig:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ModelsConfigError(
                f"expected a mapping of sections ({', '.join(SECTIONS)}), got {type(data).__name__}"
            )
        for key in data:
            if key not in SECTIONS:
                raise ModelsConfigError(f"{key!r} is not a section of the models file; known: {', '.join(SECTIONS)}")
        if data.get("version", 1) != 1:
            raise ModelsConfigError(f"version {data['version']!r} is not supported (this Tailor reads version 1)")
        max_users = data.get("max_users", DEFAULT_MAX_USERS)
        if isinstance(max_users, bool) or not isinstance(max_users, int) or max_users < 1:
            raise ModelsConfigError(f"max_users must be a positive integer, got {max_users!r}")
        try:
            clustering = ClusteringConfig.from_dict(data.get("clustering") or {})
            recommendations = RecommenderConfig.from_dict(data.get("recommendations") or {})
            if data.get("movielens") is not None:  # validated like the section it is merged over
                RecommenderConfig.from_dict(merge_sections(data.get("recommendations") or {}, data["movielens"]))
        except (TailorError, ValueError) as exc:
            raise ModelsConfigError(str(exc)) from None
        return cls(clustering, recommendations, max_users, dict(data))

    @classmethod
    def from_yaml(cls, path: Path | str) -> ModelsConfig:
        data = read_yaml_file(path, "models file", ModelsConfigError)
        try:
            return cls.from_dict(data)
        except ModelsConfigError as exc:
            raise ModelsConfigError(f"{path}: {exc}") from None

    def section(self, name: str) -> dict[str, Any]:
        """A copy of one section as read (``{}`` if absent), for evaluations that derive variants."""
        value = self.source.get(name) or {}
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in value.items()}


def merge_sections(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` over ``base``, sub-mapping by sub-mapping.

    >>> merge_sections({"k": 10, "mf": {"n_factors": 20, "steps": 1}}, {"mf": {"steps": 2}})
    {'k': 10, 'mf': {'n_factors': 20, 'steps': 2}}
    """
    merged = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged
