"""``tailor serve``: profiles, recommendations and content decisions over HTTP, from the job's Redis.

FastAPI (OpenAPI at ``/openapi.json``, docs at ``/docs``) on uvicorn. Every request has a time budget
(``serve_budget_ms``). Redis is read through:

* a small in-process cache with stale-while-revalidate (``operators.stale_cache``): fresh for
  ``serve_cache_ttl_ms``, then served stale (and refreshed in the background) up to ``serve_stale_ms``;
* a circuit breaker (purgatory): after 5 consecutive failures Redis is not asked for 5 s;
* a fallback when Redis is slow, down or the breaker is open: the default variations of the decision
  matrix, and as recommendations the job's list of items trending overall (``{prefix}popular``, cached
  like the rest), else the items most often served recently by this process. Every response says where
  it came from (``source``) and whether it is a fallback.

Users without a list of their own get the job's trending items too (``source: popular``). ``category``
filters a list by the items' categories (``tailor.recommendation/2``): a user's own list is only filtered,
never topped up with items they might have bought.

The job's change and recommendation channels are followed (``connectors.live_updates``): a user's change
drops their cache entries, so the cache never hides a change for its TTL, and is pushed to the user's
``GET /v1/users/{id}/changes`` event streams, on which the snippet re-decides its slots.

The decision matrix (``operators.decisions``) and the experiments (``operators.experiments``) are reloaded
when their file changes (checked at most once a second); an invalid new version is refused, the old one
kept, and the error shown by ``/health``. ``decide`` assigns a known user to every experiment whose
audience they are in; an experiment that names a slot holds it out for its control variant (the slot's
default content instead of the matrix's decision). The response lists the assignments, and the snippet
sends them back as ``Experiment Viewed`` exposures.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson
import redis.asyncio as aioredis
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import CLOSED, OpenedState
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from connectors.dashboard import SAMPLE_S, AudienceHistory, render
from connectors.live_updates import LiveUpdates, TooManyListeners
from connectors.redis_clients import RedisAuth
from connectors.redis_keys import RedisKeys
from operators.decisions import DecisionMatrix, DecisionMatrixError, Profile
from operators.experiments import Experiment, ExperimentsError, load_experiments
from operators.stale_cache import FRESH, MISS, STALE, StaleWhileRevalidate
from settings import Settings
from state_schemas import experiment_report, popular_items, recalibration

BREAKER = "redis"
BREAKER_FAILURES, BREAKER_OPEN_S = 5, 5
RELOAD_CHECK_S = 1.0
KEEP_ALIVE_S = 15.0  # an event stream's comment line when quiet, so proxies keep it open
WEB = Path(__file__).parent / "web"
SNIPPET = (WEB / "tailor.js").read_bytes()
SHOP = (WEB / "shop.html").read_bytes()
_NUMERIC_FACTS = ("last_seen", "sessions_total", "purchases_total", "updated_at")


class RedisAway(Exception):
    """Redis is not asked now: the breaker is open and another request probes it."""


class DecideRequest(BaseModel):
    user_id: str | None = Field(None, description="the user (pseudonym if the job pseudonymises); none: anonymous")
    page: str | None = Field(None, description="where the slots are shown, passed to templates")
    slots: list[str] = Field(..., min_length=1, max_length=20, description="slot names of the decision matrix")


def profile_from_hash(user_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """The API's profile from the job's profile hash (``connectors.redis_keys``).

    >>> profile_from_hash("u1", {"segments": "active,vip", "cluster": "cart_fillers", "sessions_total": "3"})
    {'user_id': 'u1', 'segments': ['active', 'vip'], 'cluster': 'cart_fillers', 'facts': {'sessions_total': 3}}
    """
    facts: dict[str, Any] = {}
    for name in _NUMERIC_FACTS:
        if fields.get(name):
            try:
                facts[name] = int(fields[name])
            except ValueError:
                facts[name] = fields[name]
    segments = [s for s in fields.get("segments", "").split(",") if s]
    return {"user_id": user_id, "segments": segments, "cluster": fields.get("cluster") or None, "facts": facts}


T = TypeVar("T")


class HotFile(Generic[T]):
    """A config file's parsed value, reloaded when the file changes; a broken edit keeps the old one."""

    def __init__(self, path: Path, load: Callable[[Path], T], errors: tuple[type[Exception], ...]) -> None:
        self.path, self.load, self.errors = path, load, (*errors, OSError)
        self.value = load(path)
        self.mtime = path.stat().st_mtime
        self.checked = time.monotonic()
        self.error: str | None = None
        self.reloads = 0

    def current(self) -> T:
        now = time.monotonic()
        if now - self.checked >= RELOAD_CHECK_S:
            self.checked = now
            try:
                mtime = self.path.stat().st_mtime
            except OSError as e:
                self.error = f"{self.path}: {e.strerror}; serving the last good version"
                return self.value
            if mtime != self.mtime:
                self.mtime = mtime
                try:
                    self.value, self.error = self.load(self.path), None
                    self.reloads += 1
                except self.errors as e:
                    self.error = f"{e}; serving the last good version"
        return self.value


class Serving:
    def __init__(self, settings: Settings, decisions_file: Path) -> None:
        self.settings = settings
        self.budget_s = settings.serve_budget_ms / 1000
        self.keys = RedisKeys(settings.redis_prefix)
        self.redis = aioredis.Redis(host=settings.redis_host, port=settings.redis_port,
                                    socket_timeout=self.budget_s, socket_connect_timeout=self.budget_s,
                                    **RedisAuth.of(settings).options())
        self.breakers = AsyncCircuitBreakerFactory(default_threshold=BREAKER_FAILURES, default_ttl=BREAKER_OPEN_S)
        ttl, stale = settings.serve_cache_ttl_ms / 1000, settings.serve_stale_ms / 1000
        self.profiles = StaleWhileRevalidate(ttl, stale)
        self.recs = StaleWhileRevalidate(ttl, stale)
        self.trending = StaleWhileRevalidate(ttl, stale, max_entries=1)
        self.reports = StaleWhileRevalidate(ttl, stale, max_entries=1_000)
        self.refreshing: set[str] = set()
        self.probing = False
        self.served: Counter[tuple[str, str | None]] = Counter()  # (item, category): the last-resort list
        self.matrix = HotFile(decisions_file, DecisionMatrix.from_yaml, (DecisionMatrixError,))
        self.experiments: HotFile[list[Experiment]] = HotFile(settings.experiments_file, load_experiments,
                                                               (ExperimentsError,))
        self.counts: Counter[str] = Counter()
        self.audiences = AudienceHistory()
        self.live = LiveUpdates(settings.redis_host, settings.redis_port, settings.redis_prefix,
                                on_user=self.changed, on_resubscribe=self.forget_cached, auth=RedisAuth.of(settings))
        self.app = self._build_app()

    # -- Redis through cache, breaker and budget ------------------------------------------------------
    async def _guarded(self, call: Callable[[], Awaitable[Any]]) -> Any:
        breaker = await self.breakers.get_breaker(BREAKER)
        if breaker.context.state == CLOSED:
            async with breaker:
                return await self._within_budget(call)
        # Open or about to half-open: one request probes Redis, the others take the fallback at once
        # (purgatory's half-open state would let every concurrent request wait out the budget).
        if self.probing:
            raise RedisAway("a probe of Redis is in flight")
        self.probing = True
        try:
            async with breaker:
                return await self._within_budget(call)
        finally:
            self.probing = False

    async def _within_budget(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """The call's result, or TimeoutError at the budget without waiting for the call to wind down
        (``wait_for`` awaits the cancelled call, and a Redis connection torn down mid-read can take as long
        again: measured up to twice the budget with Redis stopped)."""
        task = asyncio.ensure_future(call())
        done, _ = await asyncio.wait({task}, timeout=self.budget_s)
        if not done:
            task.cancel()
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning
            raise TimeoutError(f"Redis did not answer within {self.budget_s * 1000:.0f} ms")
        return task.result()

    async def _lookup(
        self, cache: StaleWhileRevalidate, key: str, fetch: Callable[[], Awaitable[Any]], cached_only: bool = False
    ) -> tuple[Any, str]:
        """``cached_only``: Redis already failed this request; its budget is spent, answer from the cache."""
        value, state = cache.get(key, time.monotonic())
        self.counts[f"cache_{state}"] += 1
        if state == FRESH:
            return value, "cache"
        if state == STALE:
            if key not in self.refreshing:
                self.refreshing.add(key)
                asyncio.get_running_loop().create_task(self._refresh(cache, key, fetch))
            return value, "stale-cache"
        assert state == MISS
        if cached_only:
            return None, "fallback"
        read_at = time.monotonic()
        try:
            value = await self._guarded(fetch)
        except (OpenedState, RedisAway, TimeoutError, RedisError, OSError) as e:
            self.counts[f"redis_unavailable_{type(e).__name__}"] += 1
            return None, "fallback"
        cache.put(key, value, read_at)
        return value, "redis"

    async def _refresh(self, cache: StaleWhileRevalidate, key: str, fetch: Callable[[], Awaitable[Any]]) -> None:
        read_at = time.monotonic()
        try:
            cache.put(key, await self._guarded(fetch), read_at)
        except (OpenedState, RedisAway, TimeoutError, RedisError, OSError):
            self.counts["refresh_failed"] += 1
        finally:
            self.refreshing.discard(key)

    async def profile(self, user_id: str) -> tuple[dict[str, Any] | None, str]:
        async def fetch() -> dict[str, Any] | None:
            fields = await self.redis.hgetall(self.keys.profile(user_id))
            return profile_from_hash(user_id, {k.decode(): v.decode() for k, v in fields.items()}) if fields else None
        return await self._lookup(self.profiles, "p" + user_id, fetch)

    async def recommendations(self, user_id: str) -> tuple[dict[str, Any] | None, str]:
        async def fetch() -> dict[str, Any] | None:
            raw = await self.redis.get(self.keys.recommendations(user_id))
            return None if raw is None else orjson.loads(raw)
        rec, source = await self._lookup(self.recs, "r" + user_id, fetch)
        if rec is not None and source == "redis":
            self.served.update((i["item_id"], i.get("category")) for i in rec.get("items", ()))
        return rec, source

    async def generic(
        self, k: int, category: str | None, cached_only: bool = False
    ) -> tuple[list[dict[str, Any]], str]:
        """Items for anyone: the job's trending list (``popular``), else what this process served most
        (``fallback`` when Redis is unavailable, ``served-popular`` when the job has written no list yet).
        ``cached_only``: Redis failed earlier in this request, do not ask it again (one budget per request)."""
        async def fetch() -> list[dict[str, Any]] | None:
            raw = await self.redis.get(self.keys.popular)
            return None if raw is None else popular_items.decode(raw)["items"]
        items, source = await self._lookup(self.trending, "popular", fetch, cached_only)
        if items is not None:
            return in_category(items, category)[:k], "popular"
        served = self.served.items() if category is None else (e for e in self.served.items() if e[0][1] == category)
        items = [{"item_id": item, "source": "popular-fallback", **({"category": c} if c else {})}
                 for (item, c), _ in heapq.nlargest(k, served, key=lambda e: e[1])]
        return items, "fallback" if source == "fallback" else "served-popular"

    def changed(self, user_id: str) -> None:
        """The job published a change or a new top-K of this user."""
        now = time.monotonic()
        self.profiles.invalidate("p" + user_id, now)
        self.recs.invalidate("r" + user_id, now)

    def forget_cached(self) -> None:
        """Changes may have been missed (the live subscription was down): nothing cached is trusted."""
        self.profiles.clear()
        self.recs.clear()

    async def _sample_audiences(self) -> None:
        """Every ``dashboard.SAMPLE_S``: each audience's size, for the dashboard's history (best effort)."""
        while True:
            try:
                names = [key async for key in self.redis.scan_iter(match=self.keys.segments_pattern, count=1_000)]
                pipe = self.redis.pipeline(transaction=False)
                for key in names:
                    pipe.scard(key)
                sizes = await asyncio.wait_for(pipe.execute(), 5.0)
                self.audiences.record(time.time(), {self.keys.segment_name(k): n for k, n in zip(names, sizes,
                                                                                                 strict=True)})
            except (TimeoutError, RedisError, OSError):
                self.counts["audience_samples_failed"] += 1
            await asyncio.sleep(SAMPLE_S)

    async def _experiment_results(self) -> list[dict[str, Any]]:
        """Each configured experiment with its stored report (None before one); Redis errors leave it None."""
        experiments = self.experiments.current()
        reports = await asyncio.gather(*(self.report(e.name) for e in experiments))
        return [{"name": e.name, "variants": [v.name for v in e.variants], "audience": e.audience, "report": r}
                for e, (r, _source) in zip(experiments, reports, strict=True)]

    async def _recalibrations(self) -> list[dict[str, Any]]:
        """The newest ``tailor recalibrate`` log entries (best effort: none if Redis does not answer)."""
        try:
            raw = await asyncio.wait_for(self.redis.lrange(self.keys.recalibrations, 0, 9), self.budget_s)
        except (TimeoutError, RedisError, OSError):
            return []
        return [recalibration.decode(entry) for entry in raw]

    async def report(self, name: str) -> tuple[dict[str, Any] | None, str]:
        """An experiment's stored report (``tailor experiments report``), through the cache."""
        async def fetch() -> dict[str, Any] | None:
            raw = await self.redis.get(self.keys.experiment(name))
            return None if raw is None else experiment_report.decode(raw)
        return await self._lookup(self.reports, name, fetch)

    # -- HTTP ------------------------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            # Everything imported and built so far lives as long as the process: keep it out of the
            # collector, whose full passes over it stalled every request in flight for ~100 ms.
            gc.freeze()
            follower = asyncio.get_running_loop().create_task(self.live.run())
            sampler = asyncio.get_running_loop().create_task(self._sample_audiences())
            yield
            sampler.cancel()
            follower.cancel()
            await self.live.close()
            await self.redis.aclose()

        app = FastAPI(title="Tailor serving API", version="1", lifespan=lifespan,
                      description="Profiles, recommendations and content decisions from Tailor's live state.")
        origins = [o.strip() for o in self.settings.serve_cors_origins.split(",") if o.strip()]
        if origins:  # pages on other origins call /v1/decide from the browser (the snippet)
            app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                               allow_headers=["Content-Type"])

        @app.exception_handler(RequestValidationError)
        async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            return JSONResponse({"error": f"invalid request: {problems}"}, status_code=400)

        @app.get("/v1/users/{user_id}/profile", summary="a user's segments, ML segment and facts")
        async def get_profile(user_id: str) -> Response:
            self.counts["requests_profile"] += 1
            profile, source = await self.profile(user_id)
            if source == "fallback":
                self.counts["fallbacks"] += 1
                return _json({"user_id": user_id, "segments": [], "cluster": None, "facts": {}, "source": source,
                              "fallback": True})
            if profile is None:
                return _json({"error": f"no profile for user {user_id!r} (no event seen yet)"}, 404)
            return _json({**profile, "source": source, "fallback": False})

        @app.get("/v1/users/{user_id}/recommendations", summary="a user's latest top-K (purchased items excluded)")
        async def get_recommendations(
            user_id: str, k: int = Query(10, ge=1, le=100),
            category: str | None = Query(None, min_length=1, max_length=200, description="only items of it"),
        ) -> Response:
            self.counts["requests_recommendations"] += 1
            rec, source = await self.recommendations(user_id)
            if rec is None:
                self.counts["fallbacks"] += 1
                items, source = await self.generic(k, category, cached_only=source == "fallback")
                return _json({"user_id": user_id, "items": items, "model_version": None, "source": source,
                              "fallback": True})
            return _json({"user_id": user_id, "items": in_category(rec["items"], category)[:k],
                          "model_version": rec.get("model_version"), "source": source, "fallback": False})

        @app.post("/v1/decide", summary="the content variation per slot, rendered, and why")
        async def decide(body: DecideRequest) -> Response:
            self.counts["requests_decide"] += 1
            matrix = self.matrix.current()
            unknown = [s for s in body.slots if s not in matrix.slots]
            if unknown:
                return _json({"error": f"unknown slot(s) {unknown}; the matrix has {sorted(matrix.slots)}"}, 400)
            if body.user_id is None:
                decisions = matrix.decide(Profile((), None, {}), body.slots, page=body.page)
                return _json({"user_id": None, "decisions": [d.as_dict() for d in decisions], "source": "anonymous",
                              "fallback": False})
            (profile, p_source), (rec, r_source) = await asyncio.gather(self.profile(body.user_id),
                                                                 self.recommendations(body.user_id))
            if p_source == "fallback":
                self.counts["fallbacks"] += 1
                decisions = [matrix.default(s, "fallback: profile unavailable", body.page) for s in body.slots]
                return _json({"user_id": body.user_id, "decisions": [d.as_dict() for d in decisions],
                              "source": "fallback", "fallback": True})
            p = profile or {"segments": [], "cluster": None, "facts": {}}
            generic = [] if rec else (await self.generic(10, None, cached_only=r_source == "fallback"))[0]
            items = [i["item_id"] for i in (rec["items"] if rec else generic)]
            decisions = matrix.decide(Profile(p["segments"], p["cluster"], p["facts"]), body.slots, items, body.page)
            assigned = []
            for experiment in self.experiments.current():
                variant = experiment.assign(body.user_id, p["segments"], p["cluster"])
                if variant is None or (experiment.slot is not None and experiment.slot not in body.slots):
                    continue  # not in its audience, or its slot is not on this page: not exposed
                assigned.append({"experiment": experiment.name, "variant": variant, "slot": experiment.slot})
                if experiment.slot is not None and variant == experiment.control:
                    held_out = f"experiment {experiment.name}: control (holdout)"
                    decisions = [matrix.default(d.slot, held_out, body.page) if d.slot == experiment.slot else d
                                 for d in decisions]
            self.counts["experiment_assignments"] += len(assigned)
            return _json({"user_id": body.user_id, "decisions": [d.as_dict() for d in decisions],
                          "segments": p["segments"], "experiments": assigned, "source": p_source,
                          "fallback": False})

        @app.get("/v1/experiments/{name}", summary="an experiment's latest result (tailor experiments report)")
        async def get_experiment(name: str) -> Response:
            self.counts["requests_experiment"] += 1
            report, source = await self.report(name)
            if source == "fallback":
                return _json({"error": "Redis is unavailable; try again shortly"}, 503)
            if report is None:
                return _json({"error": f"no result for experiment {name!r} yet: run `tailor experiments report`"}, 404)
            return _json({**report, "source": source})

        @app.get("/v1/users/{user_id}/changes", summary="a user's segment changes and new top-K, as they happen",
                 description="Server-sent events: `segment_change` (tailor.segment_change/2) and "
                             "`recommendation` (tailor.recommendation/2), JSON in `data`.")
        async def live_changes(user_id: str) -> Response:
            try:
                queue = self.live.listen(user_id)
            except TooManyListeners as e:
                return _json({"error": f"{e}; retry later"}, 503)
            self.counts["live_streams_opened"] += 1

            async def events() -> AsyncIterator[bytes]:
                try:
                    yield b"retry: 2000\n\n"
                    while True:
                        try:
                            kind, payload = await asyncio.wait_for(queue.get(), KEEP_ALIVE_S)
                        except TimeoutError:
                            yield b": keep-alive\n\n"
                            continue
                        yield b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"
                finally:
                    self.live.unlisten(user_id, queue)

            return StreamingResponse(events(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

        @app.get("/v1/audiences", summary="audience sizes over the last hour, sampled every 5 s by this process")
        async def get_audiences() -> Response:
            return _json(self.audiences.as_dict())

        @app.get("/dashboard", summary="audiences over time and experiment results (HTML)", include_in_schema=False)
        async def dashboard() -> Response:
            self.counts["requests_dashboard"] += 1
            page = render(self.audiences, await self._experiment_results(), time.time(),
                          await self._recalibrations())
            return Response(page, media_type="text/html; charset=utf-8")

        @app.get("/tailor.js", summary="the personalization snippet", include_in_schema=False)
        async def snippet() -> Response:
            return Response(SNIPPET, media_type="application/javascript",
                            headers={"Cache-Control": "public, max-age=300"})

        @app.get("/shop", summary="the demo shop page (?user=ID)", include_in_schema=False)
        async def shop() -> Response:
            return Response(SHOP, media_type="text/html; charset=utf-8")

        @app.get("/health", summary="Redis reachable? breaker state, decision matrix errors")
        async def health() -> Response:
            try:
                await asyncio.wait_for(self.redis.ping(), self.budget_s)
                redis_ok = True
            except (TimeoutError, RedisError, OSError):
                redis_ok = False
            breaker = await self.breakers.get_breaker(BREAKER)
            self.matrix.current(), self.experiments.current()  # a changed file is checked now, not at a decide
            body = {"redis": "up" if redis_ok else "down", "breaker": breaker.context.state,
                    "live": "subscribed" if self.live.subscribed else "reconnecting",
                    "decisions": self.matrix.error or "ok", "decision_reloads": self.matrix.reloads,
                    "experiments": self.experiments.error or "ok"}
            healthy = redis_ok and self.matrix.error is None and self.experiments.error is None
            return _json(body, 200 if healthy else 503)

        @app.get("/metrics", summary="counters in Prometheus text format")
        async def metrics() -> Response:
            lines = []
            counts = {**self.counts, **{f"live_{k}": v for k, v in self.live.counts.items()}}
            for name, value in sorted(counts.items()):
                lines += [f"# TYPE tailor_serve_{name}_total counter", f"tailor_serve_{name}_total {value}"]
            lines += ["# TYPE tailor_serve_live_streams_open gauge",
                      f"tailor_serve_live_streams_open {self.live.open_listeners}"]
            return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

        return app


def in_category(items: list[dict[str, Any]], category: str | None) -> list[dict[str, Any]]:
    """
    >>> in_category([{"item_id": "a", "category": "c1"}, {"item_id": "b"}], "c1")
    [{'item_id': 'a', 'category': 'c1'}]
    """
    return items if category is None else [i for i in items if i.get("category") == category]


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def serve(settings: Settings, decisions_file: Path, host: str, port: int) -> None:
    """Run the serving API until interrupted (uvicorn, one process)."""
    import uvicorn

    uvicorn.run(Serving(settings, decisions_file).app, host=host, port=port, log_level="warning",
                access_log=False, server_header=False)
