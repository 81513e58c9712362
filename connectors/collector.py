"""``tailor collect``: Segment's HTTP Tracking API in front of the events topic (Starlette on uvicorn).

Point an unmodified Segment or RudderStack SDK at it (its ``host`` setting) and its events land in
``events_topic`` exactly as the job reads them. Per request:

1. the body is read up to Segment's 500 KB (``gzip`` bodies too, inflated under the same cap);
2. the write key (HTTP Basic user name, or ``writeKey``) must be one of ``collector_write_keys`` (401);
3. ``operators.tracking_api.messages`` completes the messages as Segment's servers do (``type`` from
   the endpoint, ``receivedAt``, ``timestamp``, ``messageId``);
4. each message is validated by the job's own ``operators.normalize``; an invalid one goes to the
   dead-letter topic with its reason, and the response lists it (index and reason): nothing is dropped;
5. everything is produced with an idempotent ``acks=all`` producer (aiokafka), keyed by the user, and
   the response is sent only after Kafka acknowledged every record. If Kafka does not within
   ``ACK_TIMEOUT_S`` the answer is 503 with ``Retry-After``: an SDK retries, and the job drops the
   duplicates by ``messageId``. Nothing is acknowledged that was not stored.

``GET /health`` says whether the producer can reach Kafka; ``GET /metrics`` has request and message
counters in Prometheus text format.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from connectors.kafka_clients import kafka_cluster
from operators.normalize import InvalidEvent, normalize
from operators.tracking_api import MAX_REQUEST_BYTES, TrackingApiError, messages, write_key
from settings import Settings
from state_schemas import dead_letter

# A body a little over the limit is read and dropped so the client can read the 413; one far over is not.
DRAIN_LIMIT_BYTES = 4 * MAX_REQUEST_BYTES
ACK_TIMEOUT_S = 10.0  # the longest a request waits for Kafka before it is answered 503
RETRY_AFTER_S = 5
SOURCE = "collector"


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"success": False, "message": message}, headers)


class Collector:
    """The HTTP handlers and the producer behind them; ``app`` is the ASGI application."""

    def __init__(self, settings: Settings, write_keys: frozenset[str]) -> None:
        if not write_keys:
            raise ValueError("the collector needs at least one write key")
        self.settings, self.write_keys = settings, write_keys
        self.producer: AIOKafkaProducer | None = None
        self.counts: Counter[str] = Counter()
        self.app = Starlette(
            routes=[
                Route("/v1/{method}", self.track, methods=["POST"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    @asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.producer = AIOKafkaProducer(
            **kafka_cluster(self.settings).aiokafka_options(),
            client_id="tailor-collector",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,  # a request waits for its acks: a short linger still batches concurrent requests
            request_timeout_ms=int(ACK_TIMEOUT_S * 1000),
        )
        await self.producer.start()
        try:
            yield
        finally:
            await self.producer.stop()

    async def track(self, request: Request) -> Response:
        self.counts["requests"] += 1
        try:
            body = await _read_body(request)
            parsed = _parse(body)
            if write_key(request.headers.get("authorization"), parsed) not in self.write_keys:
                raise TrackingApiError(401, "missing or unknown write key (HTTP Basic user name, or 'writeKey')")
            now_ms = int(time.time() * 1000)
            batch = messages(request.path_params["method"], parsed, now_ms)
        except TrackingApiError as e:
            self.counts[f"refused_{e.status}"] += 1
            return _error(e.status, e.message)
        records: list[tuple[str, bytes | None, bytes]] = []
        rejected = []
        for n, message in enumerate(batch):
            raw = orjson.dumps(message)
            try:
                event = normalize(raw, now_ms)
            except InvalidEvent as e:
                rejected.append({"index": n, "error": e.code, "reason": e.reason})
                letter = dead_letter.encode(e.code, e.reason, raw, SOURCE, now_ms, operator="collector")
                records.append((self.settings.dead_letters_topic, None, letter))
                continue
            records.append((self.settings.events_topic, event.user_key.encode(), raw))
        try:
            await asyncio.wait_for(self._store(records), ACK_TIMEOUT_S)
        except (KafkaError, TimeoutError) as e:
            self.counts["unavailable_503"] += 1
            return _error(503, f"Kafka did not acknowledge the events ({type(e).__name__}); nothing is "
                               f"acknowledged, retry after {RETRY_AFTER_S} s", {"Retry-After": str(RETRY_AFTER_S)})
        self.counts["messages_stored"] += len(batch) - len(rejected)
        self.counts["messages_dead_lettered"] += len(rejected)
        return _json(200, {"success": True, "stored": len(batch) - len(rejected), "rejected": rejected})

    async def _store(self, records: list[tuple[str, bytes | None, bytes]]) -> None:
        assert self.producer is not None
        pending = [await self.producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*pending)

    async def health(self, _request: Request) -> Response:
        assert self.producer is not None
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), 2.0)
        except (KafkaError, TimeoutError):
            return _json(503, {"status": "kafka unavailable"})
        return _json(200, {"status": "ok"})

    async def metrics(self, _request: Request) -> Response:
        lines = []
        for name, value in sorted(self.counts.items()):
            lines += [f"# TYPE tailor_collector_{name}_total counter", f"tailor_collector_{name}_total {value}"]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


async def _read_body(request: Request) -> bytes:
    """The body, inflated if gzip; 413 past Segment's request limit (also while inflating: no zip bombs)."""
    too_large = TrackingApiError(413, f"request body is larger than {MAX_REQUEST_BYTES // 1024} KB")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > DRAIN_LIMIT_BYTES:
        raise too_large  # not worth reading: the client may see the connection close before the answer
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN_LIMIT_BYTES:
            raise too_large
        if size <= MAX_REQUEST_BYTES:
            chunks.append(chunk)
    if size > MAX_REQUEST_BYTES:  # read to the end, so the client gets the 413 instead of a broken pipe
        raise too_large
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            body = inflater.decompress(body, MAX_REQUEST_BYTES + 1)
        except zlib.error as e:
            raise TrackingApiError(400, f"body is not valid gzip: {e}") from e
        if len(body) > MAX_REQUEST_BYTES or inflater.unconsumed_tail:
            raise TrackingApiError(413, f"inflated body is larger than {MAX_REQUEST_BYTES // 1024} KB")
    return body


def _parse(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise TrackingApiError(400, f"body is not JSON: {e}") from e
    if not isinstance(parsed, dict):
        raise TrackingApiError(400, f"body must be a JSON object, got {type(parsed).__name__}")
    return parsed


def serve(settings: Settings, write_keys: frozenset[str], host: str, port: int) -> None:
    """Run the collector until interrupted (uvicorn, one process; uvloop and httptools when installed)."""
    import uvicorn

    uvicorn.run(Collector(settings, write_keys).app, host=host, port=port, log_level="warning",
                access_log=False, server_header=False)
