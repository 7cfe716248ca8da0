"""A folder of videos on a Ray cluster: actors that each hold one Analyzer, the files as tasks.

Ray is an extra (`pip install .[ray]`); this module is imported only for --ray. On a cluster of several
machines the folder and the output folder must be at the same path on every machine (a shared
filesystem), since each actor reads its files and writes their CSVs where it runs.
"""

import os

from emotion_analyzer.common.cli import silent
from emotion_analyzer.errors import UserError

# An actor whose process dies (a machine lost, the memory killer) is started again this many times,
# and the file it was reading is given to it again: a file is read to its end or its CSV is not there.
ACTOR_RESTARTS = 3


def connect(address):
    """Join the cluster at `address`; 'auto' joins the one RAY_ADDRESS names, else starts one here."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'emotion-analyzer[ray]' (or pip install ray)") from None
    from emotion_analyzer.common.device import native_log_caught

    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or None
    said = []  # Ray's C++ client says why it is refused only in its log, once a second while it retries
    try:
        with native_log_caught(said):
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except ConnectionError as exc:
        if "InvalidAuthToken" in "".join(said) or listening(address):  # running, yet it refused this client
            raise UserError(token_refused(address)) from None
        raise UserError(f"--ray {address}: cannot join the Ray cluster ({exc}); start it with `ray start --head`"
                        " or pass --ray auto to start one here") from None
    return ray


def listening(address, seconds=3):
    """Whether something accepts connections at a HOST:PORT address (the cluster's GCS is running)."""
    import socket

    host, _, port = str(address or "").rpartition(":")
    if not host or not port.isdigit() or "://" in host:
        return False
    try:
        with socket.create_connection((host, int(port)), timeout=seconds):
            return True
    except OSError:
        return False


def token_refused(address):
    """The line for a cluster that uses token authentication (Ray's default for new clusters)."""
    given = os.environ.get("RAY_AUTH_MODE") == "token" and (
        os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
        or os.path.exists(os.path.expanduser("~/.ray/auth_token")))
    what = "refused the token given" if given else "asks for an authentication token and none was given"
    return (f"--ray {address}: the cluster {what}: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to the"
            " cluster's token (or RAY_AUTH_TOKEN_PATH to its file) for this command; docs/scale_out.md")


def file_worker_class(ray):
    """The actor class: one Analyzer per actor, loaded once; `read` is files.analyze_one."""

    @ray.remote(max_restarts=ACTOR_RESTARTS, max_task_retries=ACTOR_RESTARTS)
    class FileWorker:
        def __init__(self, settings):
            from emotion_analyzer.analysis.analyzer import Analyzer

            self.analyzer = Analyzer(settings, log=silent, warn=silent)

        def read(self, source, csv_path):
            from emotion_analyzer.scale.files import analyze_one

            return analyze_one(self.analyzer, source, csv_path)

    return FileWorker


def each_result_on_ray(todo, settings, actors, address):
    """files.analyze_one for each (source, CSV) job of `todo`, as each finishes, on `actors` Ray actors."""
    ray = connect(address)
    try:
        from ray.util import ActorPool

        worker = file_worker_class(ray)
        pool = ActorPool([worker.remote(settings) for _ in range(max(1, min(actors, len(todo))))])
        yield from pool.map_unordered(lambda actor, job: actor.read.remote(*job), todo)
    finally:
        ray.shutdown()
