"""Before a multi-worker run joins JAX's cluster: every worker reports to the chief, which checks that
they are all there and all about to train the same run.

JAX's own join cannot fail politely: a missing chief, a missing worker or a port in use ends every
process with SIGABRT and a C++ stack trace, after five minutes. So the chief first listens on the
coordinator's port itself, for a bounded time, and each worker tells it its index and its plan (a
digest of the version, recipe, data and checkpoint it would train from). Only when all have come and
all plans are the chief's do they join JAX, on the same port; otherwise every one of them ends with the
same one-line cause.
"""

import errno
import json
import socket
import time

from emotion_analyzer.errors import UserError

# Long enough for workers that a scheduler starts a minute apart; --join-timeout changes it.
JOIN_TIMEOUT = 120.0
RETRY_SECONDS = 0.5
MAX_MESSAGE = 64 * 1024
# What must be the same on every worker, in the order a difference is named.
PLAN_PARTS = {"version": "EmotionAnalyzer version", "recipe": "recipe (the training flags)",
              "data": "prepared data (--data)", "epochs_done": "epochs done", "checkpoint": "checkpoint"}


def host_and_port(coordinator):
    host, _, port = coordinator.rpartition(":")
    return host, int(port)


def listen_on(coordinator):
    """The chief's listening socket on the coordinator's port; UserError when it cannot be this machine's."""
    host, port = host_and_port(coordinator)
    server = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # JAX binds it again right after
    try:
        server.bind((host.strip("[]"), port))
    except OSError as exc:
        server.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"--coordinator {coordinator}: port {port} is in use on this machine (another run or"
                            " program, or a second worker 0): choose a free port, the same on every worker") from None
        raise UserError(f"--coordinator {coordinator}: worker 0 (the chief) cannot listen there ({exc.strerror}); it"
                        " runs on the machine the coordinator names, and the others use that address") from None
    server.listen()
    return server


def send(conn, message):
    conn.sendall(json.dumps(message).encode() + b"\n")


def receive(conn, deadline):
    """The next JSON message on `conn`, or None when it closes, times out or sends something else."""
    conn.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        line = conn.makefile("rb").readline(MAX_MESSAGE)
        message = json.loads(line)
    except (OSError, ValueError):
        return None
    return message if isinstance(message, dict) else None


def plan_difference(plan, chiefs, index):
    """What makes worker `index`'s plan another run than the chief's, or None."""
    for part, what in PLAN_PARTS.items():
        if plan.get(part) != chiefs.get(part):
            if part == "epochs_done":
                return (f"worker {index} would resume after epoch {plan.get(part)}, the chief after epoch"
                        f" {chiefs.get(part)}: give every worker the same --run-dir")
            hint = " (another --run-dir?)" if part == "checkpoint" else ""
            return f"worker {index}'s {what} is not the chief's{hint}: start every worker with the same checkout,"\
                   " flags, data and --run-dir"
    return None


def admission_problem(hello, arrived, num_workers, chiefs):
    index = hello.get("index")
    if not isinstance(index, int) or not 0 <= index < num_workers:
        return f"a worker reported index {index!r}, not one of 1 to {num_workers - 1}"
    if index == 0:
        return "two workers have --worker-index 0: only the chief has index 0"
    if index in arrived:
        return f"two workers have --worker-index {index}: give each its own, 1 to {num_workers - 1}"
    return plan_difference(hello.get("plan", {}), chiefs, index)


def gather_workers(worker, plan, log=print):
    """On the chief: wait up to worker.join_timeout for every other worker; raise UserError, after telling
    those that came, when one is missing, doubled or about to train another run."""
    server = listen_on(worker.coordinator)
    deadline = time.monotonic() + worker.join_timeout
    arrived, waiting, problem = {}, [], None  # index -> connection; every worker that reported
    log(f"waiting up to {worker.join_timeout:g} s for {worker.num_workers - 1} worker(s) at {worker.coordinator}")
    with server:
        while len(arrived) < worker.num_workers - 1 and problem is None:
            server.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                conn, _ = server.accept()
            except (socket.timeout, TimeoutError):
                missing = sorted(set(range(1, worker.num_workers)) - set(arrived))
                problem = (f"worker(s) {', '.join(map(str, missing))} did not come to {worker.coordinator} within"
                           f" {worker.join_timeout:g} s (a worker refused before joining says why in its own output):"
                           " start every worker with the same flags, or raise --join-timeout")
                break
            hello = receive(conn, min(deadline, time.monotonic() + 10))
            if hello is None or "index" not in hello:
                conn.close()  # not one of ours: a port scanner, or a worker that gave up
                continue
            problem = admission_problem(hello, arrived, worker.num_workers, plan)
            waiting.append(conn)
            arrived.setdefault(hello["index"], conn)
        for conn in waiting:
            with conn:
                try:
                    send(conn, {"ok": problem is None, "problem": problem})
                except OSError:
                    pass  # that worker is gone; the others are told
    if problem:
        raise UserError(problem)


def connect_until(coordinator, deadline):
    host, port = host_and_port(coordinator)
    while True:
        try:
            return socket.create_connection((host.strip("[]"), port), timeout=RETRY_SECONDS * 4)
        except OSError:
            if time.monotonic() >= deadline:
                return None
            time.sleep(RETRY_SECONDS)


def report_to_chief(worker, plan):
    """On any other worker: tell the chief our index and plan, and wait for its verdict (UserError when
    there is no chief, or it refuses the cluster)."""
    deadline = time.monotonic() + worker.join_timeout
    conn = connect_until(worker.coordinator, deadline)
    if conn is None:
        raise UserError(f"no chief (worker 0) listening at {worker.coordinator} after {worker.join_timeout:g} s:"
                        " start worker 0 there with the same flags, or check the address, the port and the firewall")
    with conn:
        send(conn, {"index": worker.index, "plan": plan})
        # The chief decides by its own deadline, which may be a whole timeout after we arrived.
        verdict = receive(conn, time.monotonic() + worker.join_timeout + 5)
    if verdict is None or "ok" not in verdict:
        raise UserError(f"{worker.coordinator} did not answer as an EmotionAnalyzer chief (worker 0) would: the"
                        " chief's own output says why, or --coordinator names another program")
    if not verdict["ok"]:
        raise UserError(str(verdict["problem"]))


def rendezvous(worker, plan, log=print):
    """Return once every worker is present with the chief's plan; else a UserError on every worker."""
    if worker.is_chief:
        gather_workers(worker, plan, log)
    else:
        report_to_chief(worker, plan)
