"""Names of what the job writes to Redis, without a connection: the writer and every reader build them here.

Layout (``prefix`` defaults to ``tailor:``)::

    {prefix}profile:{user_id}     HASH  segments (comma-separated, rule order), last_seen, sessions_total,
                                        purchases_total, updated_at (event time of the last change);
                                        cluster (the ML segment; written by the model hub)
    {prefix}segment:{segment}     SET   the user ids currently in the segment (the live audience), for
                                        rule segments and ML segments (clusters) alike
    {prefix}recs:{user_id}        STRING the user's latest tailor.recommendation/2 JSON
    {prefix}popular               STRING tailor.popular_items/1 JSON: the items trending overall (model hub)
    {prefix}experiment:{name}     STRING tailor.experiment_report/1 JSON: the latest `tailor experiments report`
    {prefix}experiment-metrics:{name}  HASH  variant|segment|bucket -> tailor.experiment_metrics/1 JSON: the
                                        job's running totals per bucket (sum the buckets)
    {prefix}segment-changes       pub/sub channel: every tailor.segment_change/2 as JSON, as it happens
    {prefix}recommendations       pub/sub channel: every tailor.recommendation/2 as JSON

>>> keys = RedisKeys("tailor:")
>>> keys.profile("u1"), keys.segment("Cart Fillers"), keys.recommendations("u1")
('tailor:profile:u1', 'tailor:segment:Cart Fillers', 'tailor:recs:u1')
>>> keys.changes_channel, keys.recommendations_channel, keys.popular
('tailor:segment-changes', 'tailor:recommendations', 'tailor:popular')
>>> keys.segments_pattern, keys.segment_name("tailor:segment:Cart Fillers")
('tailor:segment:*', 'Cart Fillers')
>>> RedisKeys("bench-1[a]:").everything_pattern
'bench-1\\\\[a\\\\]:*'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GLOB = re.compile(r"([*?\[\]\\])")


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str = "tailor:"

    def profile(self, user_id: str) -> str:
        return f"{self.prefix}profile:{user_id}"

    def segment(self, name: str) -> str:
        return f"{self.prefix}segment:{name}"

    def recommendations(self, user_id: str) -> str:
        return f"{self.prefix}recs:{user_id}"

    @property
    def popular(self) -> str:
        return f"{self.prefix}popular"

    def experiment(self, name: str) -> str:
        return f"{self.prefix}experiment:{name}"

    def experiment_metrics(self, name: str) -> str:
        return f"{self.prefix}experiment-metrics:{name}"

    @property
    def recalibrations(self) -> str:
        """LIST of ``tailor recalibrate``'s log entries (JSON), newest first."""
        return f"{self.prefix}recalibrations"

    def segment_name(self, key: str | bytes) -> str:
        """The segment of an audience key (as SCAN returns it, bytes or str)."""
        text = key.decode() if isinstance(key, bytes) else key
        return text.removeprefix(self.segment(""))

    @property
    def changes_channel(self) -> str:
        return f"{self.prefix}segment-changes"

    @property
    def recommendations_channel(self) -> str:
        return f"{self.prefix}recommendations"

    # SCAN MATCH patterns. The prefix is escaped: a `*` or `[` in it must not widen a scan (or a delete).
    @property
    def profiles_pattern(self) -> str:
        return f"{self._glob_prefix}profile:*"

    @property
    def segments_pattern(self) -> str:
        return f"{self._glob_prefix}segment:*"

    @property
    def recommendations_pattern(self) -> str:
        return f"{self._glob_prefix}recs:*"

    @property
    def everything_pattern(self) -> str:
        return f"{self._glob_prefix}*"

    @property
    def _glob_prefix(self) -> str:
        return _GLOB.sub(r"\\\1", self.prefix)
