"""Training on several machines: Keras 3's data parallelism on the JAX backend, one process a machine.

Every worker runs `training.py --strategy multiworker` with the same flags but its own --worker-index;
worker 0 (the chief) coordinates, writes the run folder and saves the model, the others write nothing.
tf.distribute's multi-worker strategy does not run under Keras 3 (keras-team/keras issue 20585), so
these runs use the JAX backend; the data pipeline stays tf.data and the saved model is the same
.keras file, read by the TensorFlow analyzer. A single-machine run never touches this module.
"""

import contextlib
import importlib.util
import os
import sys
from dataclasses import dataclass

from emotion_analyzer.errors import UserError
from emotion_analyzer.training.rendezvous import JOIN_TIMEOUT, rendezvous

STRATEGY = "multiworker"
BACKEND = "jax"
# Keras reads these when the flags are not given (keras.distribution.initialize), so a cluster
# scheduler can start every worker with the same command line.
ENVIRONMENT = {"coordinator": "KERAS_DISTRIBUTION_JOB_ADDRESSES", "num_workers": "KERAS_DISTRIBUTION_NUM_PROCESSES",
               "worker_index": "KERAS_DISTRIBUTION_PROCESS_ID"}
CHIEF = 0
INSTALL_HINT = "pip install '.[multiworker]' (or: pip install -r requirements-dev.txt)"


@dataclass(frozen=True)
class Worker:
    """This process's place in the cluster: the coordinator's host:port, how many workers, which one,
    and how long to wait for the others."""
    coordinator: str
    num_workers: int
    index: int
    join_timeout: float = JOIN_TIMEOUT

    @property
    def is_chief(self):
        return self.index == CHIEF


def worker_from(coordinator=None, num_workers=None, worker_index=None, environ=os.environ,
                join_timeout=JOIN_TIMEOUT):
    """The Worker named by the flags, else by Keras's KERAS_DISTRIBUTION_* variables; UserError when
    either is incomplete or out of range."""
    given = {"coordinator": coordinator, "num_workers": num_workers, "worker_index": worker_index}
    for name, variable in ENVIRONMENT.items():
        if given[name] is None and environ.get(variable):
            given[name] = environ[variable].split(",")[0] if name == "coordinator" else environ[variable]
    missing = [f"--{name.replace('_', '-')} (or {ENVIRONMENT[name]})" for name, value in given.items() if value is None]
    if missing:
        raise UserError(f"--strategy {STRATEGY} needs {', '.join(missing)}: every worker names the chief's"
                        " host:port, the number of workers and its own index (0 = the chief)")
    try:
        num_workers, index = int(given["num_workers"]), int(given["worker_index"])
    except ValueError:
        raise UserError(f"--num-workers {given['num_workers']} / --worker-index {given['worker_index']}:"
                        " expected whole numbers") from None
    if num_workers < 1 or not 0 <= index < num_workers:
        raise UserError(f"--worker-index {index} with --num-workers {num_workers}: expected an index from 0 to"
                        f" {num_workers - 1}")
    host, _, port = str(given["coordinator"]).rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--coordinator {given['coordinator']}: expected the chief's HOST:PORT, such as"
                        " 10.0.0.1:12345 (the port must be free on the chief and reachable from every worker)")
    return Worker(str(given["coordinator"]), num_workers, index, join_timeout)


def use_jax_backend():
    """Make Keras start on JAX; it must be called before Keras is first imported."""
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != BACKEND:
        raise RuntimeError("Keras was imported before use_jax_backend(); the backend is chosen once, at import")
    if importlib.util.find_spec(BACKEND) is None:
        raise UserError(f"--strategy {STRATEGY} trains on Keras's JAX backend, and JAX is not installed:"
                        f" {INSTALL_HINT}")
    os.environ["KERAS_BACKEND"] = BACKEND


def join(worker, plan, log=print):
    """Connect to the other workers and share every batch among them, once all of them have reported to
    the chief with its `plan` (rendezvous.py); UserError, on every worker, when they cannot."""
    rendezvous(worker, plan, log)
    import keras

    keras.distribution.initialize(worker.coordinator, worker.num_workers, worker.index)
    keras.distribution.set_distribution(keras.distribution.DataParallel())


def joined():
    """True in a process that has joined a cluster of more than one worker."""
    if os.environ.get("KERAS_BACKEND") != BACKEND:
        return False
    import keras

    distribution = keras.distribution.distribution()
    return distribution is not None and getattr(distribution, "num_processes", 1) > 1


def is_chief():
    """Whether this process writes: every process but the non-chief workers of a cluster."""
    if not joined():
        return True
    import jax

    return jax.process_index() == CHIEF


@contextlib.contextmanager
def on_this_worker_only():
    """Run the block on this process's own device: the chief saving a checkpoint or evaluating. Inside
    the cluster's distribution every new variable is a collective step, which would wait forever for
    workers that are not saving."""
    if not joined():
        yield
        return
    import keras

    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)


def wait_for_all(step):
    """Block until every worker reaches `step`, so none leaves while the chief still saves."""
    if joined():
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(step)
