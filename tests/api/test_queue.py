"""The default job queue sends `repair.run_job(job_id)` through a real broker."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import redis

from api.queue import CeleryJobQueue
from api.settings import BrokerSettings


@pytest.mark.integration
def test_enqueue_puts_one_run_job_message_on_the_redis_queue(redis_url: str) -> None:
    queue_name = f"test-queue-{uuid.uuid4().hex[:10]}"
    queue = CeleryJobQueue(BrokerSettings(url=redis_url, queue=queue_name))
    job_id = uuid.uuid4()
    client = redis.Redis.from_url(redis_url)
    try:
        queue.ping()
        queue.enqueue(job_id)
        messages = client.lrange(queue_name, 0, -1)
        assert len(messages) == 1
        message = json.loads(messages[0])
        assert message["headers"]["task"] == "repair.run_job"
        assert message["content-type"] == "application/json"
        assert str(job_id) in message["headers"]["argsrepr"]
    finally:
        client.delete(queue_name)
        client.close()
        queue.close()


def test_enqueue_on_the_filesystem_broker_writes_a_message_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    queue = CeleryJobQueue(BrokerSettings(url="filesystem://", folder=tmp_path / "broker"))
    job_id = uuid.uuid4()
    try:
        queue.ping()
        queue.enqueue(job_id)
    finally:
        queue.close()
    files = [p for p in (tmp_path / "broker").iterdir() if p.is_file()]
    assert len(files) == 1
    assert str(job_id) in files[0].read_text()
    assert list(cwd.iterdir()) == [], "the broker wrote outside its folder"


def test_ping_fails_when_the_broker_is_unreachable() -> None:
    queue = CeleryJobQueue(BrokerSettings(url="redis://127.0.0.1:1/0"))
    try:
        with pytest.raises(Exception):  # noqa: B017 (kombu raises its own connection errors)
            queue.ping()
    finally:
        queue.close()
