"""Writing a sorted dataset: out/<split>/<emotion>/ built aside and swapped in as one unit, and the
summaries of what was written and skipped."""

import os
import shutil
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import cv2

from emotion_analyzer import config
from emotion_analyzer.common.cli import progress, warn
from emotion_analyzer.errors import UserError
from emotion_analyzer.common.fileio import write_json_atomic, write_text_atomic
from emotion_analyzer.common.stops import deferred
from emotion_analyzer.core.images import check_image_file

MANIFEST_FILE = ".clean_data.json"


def _unique_names(items):
    """File names made unique within each split/emotion folder (nested sources can repeat names)."""
    used = defaultdict(set)
    for item in items:
        folder = used[(item.split, item.emotion)]
        name, n = item.name, 1
        while name.lower() in folder:
            name = f"{n}_{item.name}"
            n += 1
        folder.add(name.lower())
        item.name = name


def _write_item(item, folder):
    """Write one item into `folder`; return None, or the reason it was skipped."""
    target = folder / item.split / item.emotion / item.name
    if item.pixels is not None:
        ok, encoded = cv2.imencode(".png", item.pixels)
        target.write_bytes(encoded.tobytes())
        return None
    problem = check_image_file(item.path)
    if problem:
        return problem
    shutil.copyfile(item.path, target)
    return None


def prepare_output(out, force):
    """Check `out` may receive train/ and test/; return the folders to replace once done."""
    existing = [out / split for split in config.SPLITS if (out / split).exists() and any((out / split).iterdir())]
    if existing and not force:
        raise UserError(f"{existing[0]} is not empty: pass --force to replace it, or choose another --out")
    if existing and not (out / MANIFEST_FILE).exists():
        raise UserError(f"{existing[0]} was not made by clean_data.py, so it is not replaced;"
                        " move it away or choose another --out")
    return existing


def votes_table(items, written):
    """The sorted set's votes file: each written item's path under the output and its ten votes."""
    from emotion_analyzer.data.prepared import VOTE_COLUMNS

    rows = [",".join(["image", *VOTE_COLUMNS])]
    rows += [",".join([f"{item.split}/{item.emotion}/{item.name}", *map(str, item.votes)])
             for item, ok in zip(items, written) if ok and item.votes is not None]
    return "\n".join(rows) + "\n"


PARTIAL_PREFIX = ".clean_data-partial-"  # and the id of the process that builds it


def remove_copies_of_killed_runs(out):
    """Remove the hidden folders that runs killed outright (SIGKILL, a power cut) left in `out`: a whole copy
    of a dataset each. A folder whose process still runs is another run's work, and stays."""
    for folder in out.glob(f"{PARTIAL_PREFIX}*"):
        pid = folder.name[len(PARTIAL_PREFIX):]
        if pid.isdigit() and not process_is_running(int(pid)):
            shutil.rmtree(folder)
            warn(f"removed {folder}: what a clean_data.py run killed before its end had written")


def process_is_running(pid):
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and is another user's
        return True
    return True


def write_output(items, out, categories, force, description, workers=4, with_votes=False):
    """Copy or encode every item into out/<split>/<emotion>/; return ([(file, reason)] skipped, counts).

    Everything is built in a hidden folder inside `out`; then, with stop signals held back, the old
    train/ and test/ are moved aside, the new ones renamed into place and categories.json, the votes
    (`with_votes`: each item's `votes`; else an old votes file is removed) and the manifest
    (`description` plus the counts) written, so `out` holds the old set or the new one.
    """
    from emotion_analyzer.data.votes import VOTES_FILE

    replace = prepare_output(out, force)
    out.mkdir(parents=True, exist_ok=True)
    remove_copies_of_killed_runs(out)
    partial = out / f"{PARTIAL_PREFIX}{os.getpid()}"
    skipped = []
    try:
        for split in config.SPLITS:
            for emotion in categories:
                (partial / split / emotion).mkdir(parents=True, exist_ok=True)
        _unique_names(items)
        written = []
        with ThreadPoolExecutor(workers) as pool:
            results = pool.map(lambda item: _write_item(item, partial), items)
            # the bar leads the zip, so it counts the last item too (zip stops at the first iterable to end)
            for problem, item in zip(progress(results, total=len(items), desc="copying", unit="img"), items):
                if problem:
                    skipped.append((item.path, problem))
                written.append(not problem)
        counts = count_output(partial, categories)
        votes = votes_table(items, written) if with_votes else None
        with deferred():
            for old in replace:
                os.replace(old, partial / f"old-{old.name}")
            for split in config.SPLITS:
                os.replace(partial / split, out / split)
            write_json_atomic(out / config.CATEGORIES_FILE, categories)
            if votes is None:
                (out / VOTES_FILE).unlink(missing_ok=True)
            else:
                write_text_atomic(out / VOTES_FILE, votes)
            write_json_atomic(out / MANIFEST_FILE, {**description, "counts": counts})
    finally:
        with deferred():  # a stop that arrives while the old set is removed would leave half of it behind
            if partial.exists():
                shutil.rmtree(partial)
    return skipped, counts


def count_output(out, categories):
    """{split: {emotion: files}} as written."""
    return {
        split: {e: sum(1 for _ in (out / split / e).iterdir()) for e in categories}
        for split in config.SPLITS
    }


def format_counts_table(counts, categories):
    width = max(len(e) for e in categories + ["emotion", "total"])
    lines = [f"{'emotion':<{width}}  {'train':>8}  {'test':>8}"]
    for emotion in categories:
        lines.append(f"{emotion:<{width}}  {counts['train'][emotion]:>8,}  {counts['test'][emotion]:>8,}")
    lines.append(f"{'total':<{width}}  {sum(counts['train'].values()):>8,}  {sum(counts['test'].values()):>8,}")
    return "\n".join(lines)
