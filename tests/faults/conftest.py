from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.harness import JobProcess
from tests.integration.harness import redis_client, stack_settings  # noqa: F401  (fixtures)


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[Callable[..., JobProcess]]:
    """Makes job processes; whatever a test leaves running is stopped when it ends, passed or failed."""
    started: list[JobProcess] = []

    def make(settings, **flags) -> JobProcess:  # type: ignore[no-untyped-def]
        job = JobProcess(settings, tmp_path / f"job{len(started)}", **flags)
        started.append(job)
        return job

    yield make
    for job in started:
        job.stop()
