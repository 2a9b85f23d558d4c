"""What users get wrong, and the brokers: `renewals worker` refuses a bad engine or
concurrency in one line (exit 2); a broker that does not answer is one clear line (its
password never shown), and never fails a webhook's acknowledgement; a task round-trips
through RabbitMQ."""

from __future__ import annotations

import signal
import socket

import pytest

from crm_renewals.connector.config import load_config
from crm_renewals.jobs.dispatch import Dispatcher, DispatchError
from tests.conftest import cli_for, write_config
from tests.scaleout.conftest import make_fleet, wait_for

NOWHERE = "redis://:s3cret-pw@127.0.0.1:1/0"  # nothing listens on port 1
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--engine", "bogus"), "Invalid value for '--engine'"),
        (("--engine", "celery", "--concurrency", "0"), "Invalid value for '--concurrency'"),
        (("--concurrency", "2"), "--concurrency is for --engine celery"),
        (("--engine", "celery", "--concurrency", "x"), "Invalid value for '--concurrency'"),
    ],
)
def test_worker_refuses_bad_options_in_one_line(tmp_path, args, says):
    result = cli_for(write_config(tmp_path))("worker", *args)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and says in errors[0]
    assert "Traceback" not in result.output


def test_a_worker_whose_broker_does_not_answer_says_so_in_one_line(tmp_path):
    path = write_config(tmp_path, workers={"engine": "celery", "broker_url": NOWHERE})
    result = cli_for(path)("worker", "--engine", "celery")
    assert result.exit_code == 2
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error")]
    assert "broker" in line and "does not answer" in line and "127.0.0.1:1" in line
    assert "s3cret-pw" not in result.output and "Traceback" not in result.output


def test_a_worker_takes_its_engine_from_app_yaml_unless_told(tmp_path):
    path = write_config(tmp_path, workers={"engine": "celery", "broker_url": NOWHERE})
    result = cli_for(path)("worker")  # app.yaml says celery: a Celery worker, its broker checked
    assert result.exit_code == 2 and "does not answer" in result.output
    result = cli_for(path)("worker", "--engine", "local", "--concurrency", "2")
    assert result.exit_code == 2 and "--concurrency is for --engine celery" in result.output


def test_enqueueing_to_a_broker_that_does_not_answer_is_a_dispatch_error(tmp_path):
    path = write_config(tmp_path, workers={"engine": "celery", "broker_url": NOWHERE})
    dispatch = Dispatcher(load_config(path))
    try:
        with pytest.raises(DispatchError) as exc:
            dispatch.sync("default")
        assert "s3cret-pw" not in str(exc.value)
    finally:
        dispatch.close()


def rabbitmq_or_skip() -> None:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError as exc:
        pytest.skip(f"no RabbitMQ at 127.0.0.1:5672: {exc}")


def test_a_sync_task_round_trips_through_rabbitmq(tmp_path, monkeypatch):
    rabbitmq_or_skip()
    fleet = make_fleet(tmp_path, monkeypatch, None, broker_url=RABBITMQ)
    dispatch = Dispatcher(fleet.base)
    try:
        assert dispatch.redis is None  # amqp and no redis_url: no pending marks
        assert dispatch.sync("second")
        fleet.worker(concurrency=1)
        store = fleet.store("second")
        try:
            wait_for(lambda: store.runs.list(limit=5), procs=fleet.procs)
            wait_for(lambda: store.runs.list(limit=5)[0].finished_at, procs=fleet.procs)
        finally:
            store.close()
    finally:
        fleet.stop(signal.SIGKILL)  # its task is done (amqp: a worker takes ~10 s to stop)
        with dispatch.app.connection_for_write() as conn:  # the test's queues, not kept
            for queue in (fleet.queue, f"{fleet.queue}.webhooks"):
                conn.default_channel.queue_delete(queue)
        dispatch.close()
