"""The workers of a multi-worker run meet at the chief before they join JAX: every way a cluster
cannot form ends every worker within the timeout, with one line naming the cause."""

import socket
import threading
import time

import pytest

from emotion_analyzer.errors import UserError
from emotion_analyzer.training.distribute import Worker
from emotion_analyzer.training.rendezvous import rendezvous

PLAN = {"version": "1", "recipe": "r", "data": "d", "epochs_done": 3, "checkpoint": "c"}
TIMEOUT = 3.0


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def meet(num_workers, indices, plans=None, coordinator=None, timeout=TIMEOUT):
    """Run rendezvous for each index in its own thread: {index: None (joined) or the error line}, and
    the seconds the slowest took."""
    coordinator = coordinator or f"localhost:{free_port()}"
    plans = plans or {}
    results, threads = {}, []

    def one(position, index):
        try:
            rendezvous(Worker(coordinator, num_workers, index, timeout), plans.get(position, PLAN), log=lambda _: None)
            results[position] = None
        except UserError as exc:
            results[position] = str(exc)

    started = time.monotonic()
    for position, index in enumerate(indices):
        threads.append(threading.Thread(target=one, args=(position, index)))
        threads[-1].start()
        time.sleep(0.2 if position == 0 else 0)  # the chief first, as a cluster usually starts
    for thread in threads:
        thread.join(timeout * 3 + 15)
    assert not any(thread.is_alive() for thread in threads), "a worker is still waiting"
    return results, time.monotonic() - started


def test_every_worker_present_with_the_chief_s_plan_joins():
    results, _ = meet(3, [0, 1, 2])
    assert results == {0: None, 1: None, 2: None}


def test_workers_that_start_before_the_chief_wait_for_it():
    coordinator = f"localhost:{free_port()}"
    results, _ = meet(2, [1, 0], coordinator=coordinator)
    assert results == {0: None, 1: None}


def test_a_port_in_use_is_said_by_the_chief_and_the_others_find_no_chief():
    with socket.socket() as other_program:
        other_program.bind(("localhost", 0))
        other_program.listen()
        port = other_program.getsockname()[1]
        # the other program accepts nothing: its backlog holds the worker's connection unanswered
        results, took = meet(2, [0, 1], coordinator=f"localhost:{port}", timeout=2)
    assert results[0].startswith(f"--coordinator localhost:{port}: port {port} is in use on this machine")
    assert "did not answer as an EmotionAnalyzer chief" in results[1] or "no chief" in results[1]
    assert took < 2 * 2 + 15


def test_no_chief_ends_the_workers_after_the_timeout():
    results, took = meet(3, [1, 2], timeout=1.5)
    for line in results.values():
        assert line.startswith("no chief (worker 0) listening at localhost:") and "after 1.5 s" in line
    assert 1.5 <= took < 10


def test_a_worker_that_never_comes_ends_the_chief_and_those_that_came():
    results, took = meet(3, [0, 2], timeout=1.5)
    expected = ("worker(s) 1 did not come to localhost:", "within 1.5 s (a worker refused before joining says why")
    for line in results.values():
        assert line.startswith(expected[0]) and expected[1] in line, line
    assert took < 10


def test_two_chiefs_on_one_machine_the_second_finds_the_port_taken():
    results, _ = meet(2, [0, 0, 1])
    assert results[0] is None and results[2] is None
    assert "is in use on this machine (another run or program, or a second worker 0)" in results[1]


def test_two_workers_with_one_index_are_refused_by_name():
    results, _ = meet(3, [0, 1, 1])
    assert set(results.values()) == {"two workers have --worker-index 1: give each its own, 1 to 2"}


@pytest.mark.parametrize("part, message", [
    ("checkpoint", "worker 1's checkpoint is not the chief's (another --run-dir?)"),
    ("epochs_done", "worker 1 would resume after epoch 1, the chief after epoch 3: give every worker the same"
                    " --run-dir"),
    ("recipe", "worker 1's recipe (the training flags) is not the chief's"),
    ("version", "worker 1's EmotionAnalyzer version is not the chief's"),
])
def test_a_worker_about_to_train_another_run_ends_every_worker_with_the_difference(part, message):
    results, _ = meet(2, [0, 1], plans={1: {**PLAN, part: 1 if part == "epochs_done" else "other"}})
    assert len(set(results.values())) == 1 and message in results[0], results


def test_a_connection_that_says_nothing_does_not_stop_the_cluster():
    coordinator = f"localhost:{free_port()}"
    port = int(coordinator.rpartition(":")[2])

    def scan():  # a port scanner: connects as soon as the chief listens, before the worker, and leaves
        while True:
            try:
                with socket.create_connection(("localhost", port)):
                    return
            except ConnectionRefusedError:
                time.sleep(0.01)

    threading.Thread(target=scan).start()
    results, _ = meet(2, [0, 1], coordinator=coordinator)
    assert results == {0: None, 1: None}
