"""A folder of videos in one command: every video under a folder into a CSV of its own, on one or
several worker processes, each loading the model once; a rerun redoes only what is not complete.

A CSV is renamed into place only when its video was read to the end, so a file's CSV is there
complete or not at all, whatever stops the run (Ctrl-C, SIGTERM, a crash); that is what a rerun checks.
"""

import multiprocessing
import queue
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from emotion_analyzer import config
from emotion_analyzer.common.cli import progress, silent, warn
from emotion_analyzer.common.fileio import used_alone
from emotion_analyzer.common.stops import deferred, handled
from emotion_analyzer.errors import UserError
from emotion_analyzer.scale.files import analyze_one, folder_jobs, frames_in, is_complete, partial_paths

_worker_analyzer = None  # each worker process's own Analyzer, loaded once
_worker_reports = None   # where a worker says how far into its file it is: (source, frames)
_worker_stopped = False  # a stop reached this worker


def _start_worker(settings, reports):
    global _worker_analyzer, _worker_reports
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # between files the parent decides when the run stops
    from emotion_analyzer.analysis.analyzer import Analyzer

    _worker_analyzer = Analyzer(settings, log=silent, warn=silent)  # TensorFlow starts (quietly) if needed
    _worker_reports = reports


def _report(source, frames):
    _worker_reports.put((source, frames))


def _work(work, job):
    # The parent stops a worker with SIGTERM: inside a file it stops as a run does, at the end of a
    # frame, so that what it read is kept; between files it just ends. Files the pool had already
    # queued for it are not begun once it was stopped.
    global _worker_stopped
    if _worker_stopped:
        raise KeyboardInterrupt("SIGTERM")
    try:
        with handled():
            return work(_worker_analyzer, *job, report=_report)
    except KeyboardInterrupt:
        _worker_stopped = True
        raise


# How often the parent looks at the workers' progress while it waits for a file to finish.
POLL_SECONDS = 0.5


# What one worker process holds, measured: 6 workers took 5.9 GB (TensorFlow, the model, MTCNN).
WORKER_MEMORY_GB = 1.0


def available_memory_gb(meminfo="/proc/meminfo"):
    """Memory the system can give without swapping (Linux's MemAvailable), or None where unknown."""
    try:
        with open(meminfo) as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return None


def workers_that_fit(workers, say=warn, available=None):
    """`workers`, or as many as the available memory holds (each about WORKER_MEMORY_GB), said once:
    more would invite the out-of-memory killer."""
    available = available_memory_gb() if available is None else available
    if available is None:
        return workers
    fits = max(1, int(available // WORKER_MEMORY_GB))
    if workers > fits:
        say(f"--workers {workers}: each worker holds about {WORKER_MEMORY_GB:.0f} GB and {available:.1f} GB is"
            f" available; using {fits}")
        return fits
    return workers


def run_folder(settings, folder, out_dir, workers=1, log=print, analyzer=None, ray=None, shown=True):
    """Analyze every file of `folder` not yet complete in `out_dir`, on `workers` processes here or, with
    `ray` (an address or "auto"), that many Ray actors; return (results, skipped count). One run at a
    time writes into `out_dir`: a second is refused while the first lasts. `shown`: a progress bar."""
    with used_alone(out_dir, "--csv-dir"):
        return run_folder_alone(settings, folder, out_dir, workers, log, analyzer, ray, shown)


def run_folder_alone(settings, folder, out_dir, workers, log, analyzer, ray, shown):
    jobs = folder_jobs(folder, out_dir)
    if not jobs:
        raise UserError(f"{folder}: no videos (or photos) under it; expected files ending in"
                        f" {', '.join(config.VIDEO_EXTENSIONS)}")
    todo = [(source, csv_path) for source, csv_path in jobs if not is_complete(source, csv_path)]
    log(f"{folder}: {len(jobs)} file(s), {len(jobs) - len(todo)} already complete in {out_dir};"
        f" {len(todo)} to read on {min(workers, len(todo)) if todo else 0} {'Ray actor' if ray else 'worker'}(s)")
    if not todo:  # nothing to read: no TensorFlow, no model
        return [], len(jobs)
    for _, csv_path in todo:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
    results = []
    bar = FramesBar(todo, shown)
    try:
        if ray:
            from emotion_analyzer.scale.ray_actors import each_result_on_ray

            finished = each_result_on_ray(todo, settings, workers, ray)
        else:
            finished = each_result(analyze_one, todo, settings, workers, analyzer, report=bar.reached)
        for result in finished:
            results.append(result)
            bar.file_done(result)
            if result.error:
                warn(result.error if result.source in result.error else f"{result.source}: {result.error}")
            elif result.warning:
                warn(f"{result.source}: {result.warning}; its CSV holds the frames read")
    except KeyboardInterrupt:
        bar.close()  # before the line below, so that it is not drawn over
        kept = [source for source, csv_path in todo if partial_paths(csv_path)[1].is_file()]
        if kept:
            warn(f"kept what was read of {len(kept)} file(s) under way: the same command goes on from there")
        raise
    finally:
        bar.close()
        with deferred():  # a second stop must not leave half of the leftovers behind
            remove_partial_csvs(todo)
    return results, len(jobs) - len(todo)


class FramesBar:
    """The run's progress in frames (the files' announced frames as its total), a file under way
    moving it as it is read, and the files finished beside it."""

    def __init__(self, todo, shown=True):
        self.files = len(todo)
        self.done = 0
        self.seen = {}  # source -> frames of it counted so far
        total = sum(frames_in(source) for source, _ in todo) if shown else None  # each video opened: skip if unseen
        self.bar = progress(total=total or None, desc="frames", unit="frame", disable=not shown)
        self.bar.set_postfix(files=f"0/{self.files}")

    def reached(self, source, frames):
        """A file under way has `frames` of its frames read (a resumed one counts what it kept)."""
        source = str(source)
        self.bar.update(max(0, frames - self.seen.get(source, 0)))
        self.seen[source] = max(frames, self.seen.get(source, 0))

    def file_done(self, result):
        self.reached(result.source, result.frames)
        self.done += 1
        self.bar.set_postfix(files=f"{self.done}/{self.files}")

    def close(self):
        self.bar.close()


def remove_partial_csvs(todo):
    """What a stopped or failed worker was writing, unless it is a stop's kept work (a partial CSV with
    its record, files.keep_work): never a CSV a rerun would trust."""
    for _, csv_path in todo:
        for leftover in csv_path.parent.glob(f".{csv_path.name}.*.tmp.partial"):
            leftover.unlink(missing_ok=True)
        partial, record = partial_paths(csv_path)
        if not record.is_file():
            partial.unlink(missing_ok=True)


def each_result(work, todo, settings, workers, analyzer=None, report=None):
    """work(analyzer, *job, report=report) for each job of `todo`, as each finishes: in this process
    (with `analyzer`, or one made from `settings`) for one worker, else on a pool of `workers`
    processes, each with an Analyzer of its own. `report(source, frames)`: progress inside a file."""
    if workers <= 1 or len(todo) <= 1:
        if analyzer is None:  # read here, as in a worker
            from emotion_analyzer.analysis.analyzer import Analyzer

            analyzer = Analyzer(settings, log=silent, warn=silent)
        for job in todo:
            yield work(analyzer, *job, report=report)
        return
    # spawn, not fork: TensorFlow's threads do not survive a fork. A process pool of concurrent.futures,
    # not multiprocessing.Pool: when a worker dies (the out-of-memory killer), its job fails at once
    # instead of being waited for for ever.
    context = multiprocessing.get_context("spawn")
    reports = context.Queue()
    pool = ProcessPoolExecutor(min(workers_that_fit(workers), len(todo)), context,
                               initializer=_start_worker, initargs=(settings, reports))
    try:
        futures = {pool.submit(_work, work, job): job for job in todo}
        lost, pending = [], set(futures)
        while pending:
            done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            pass_on_reports(reports, report)
            for future in done:
                try:
                    result = future.result()
                except BrokenProcessPool:
                    lost.append(futures[future][0])
                    continue
                yield result
        if lost:
            raise UserError(lost_message(sorted(lost)))
    except BaseException:
        stop_workers(pool)  # a stop or a failure: the workers go at once, their partial CSVs with them
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def pass_on_reports(reports, report):
    """The workers' progress so far, to `report` (or dropped when there is none)."""
    while True:
        try:
            item = reports.get_nowait()
        except queue.Empty:
            return
        if report is not None:
            report(*item)


def stop_workers(pool):
    # ProcessPoolExecutor ends workers only between jobs (terminate_workers() comes with Python 3.14).
    for process in list(getattr(pool, "_processes", {}).values()):
        process.terminate()


def lost_message(sources):
    names = ", ".join(str(source) for source in sources[:5]) + (", ..." if len(sources) > 5 else "")
    return (f"a worker process died (killed, perhaps for lack of memory) with {len(sources)} file(s) not read:"
            f" {names}; what finished is kept: run the same command again to read the rest")


def summary_lines(results, skipped, seconds):
    failed = [r for r in results if r.error]
    frames = sum(r.frames for r in results)
    lines = [f"read {len(results) - len(failed)} file(s) ({frames:,} frames, {sum(r.faces for r in results):,}"
             f" faces) in {seconds:.1f} s; {skipped} already complete; {len(failed)} could not be read"]
    lines += [f"  {r.error if r.source in r.error else f'{r.source}: {r.error}'}" for r in failed]
    return lines


def analyze_folder(settings, folder, out_dir, workers, log=print, ray=None, shown=True):
    """The command's folder run: the results, a summary, and exit code 1 when a file could not be read.
    `log` takes its lines, and `shown` says whether it draws a progress bar."""
    started = time.perf_counter()
    results, skipped = run_folder(settings, folder, out_dir, workers, log, ray=ray, shown=shown)
    for line in summary_lines(results, skipped, time.perf_counter() - started):
        log(line)
    return 1 if any(r.error for r in results) else 0
