"""A folder of videos in one command (analyzer.py --csv-dir, --workers) and from Python
(EmotionRecognizer.analyze_videos): each file's CSV as its single run writes it, a broken file named,
a rerun redoing only what is missing, and a stop leaving only complete CSVs."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import analyzer
from demo_media import write_face_video
from emotion_analyzer.errors import UserError

CLIPS = {"a.avi": (12, 1), "b.avi": (14, 2), "sub/c.avi": (10, 3), "sub/deeper/d.avi": (16, 1)}


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    for name, (frames, faces) in CLIPS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_face_video(folder / name, frames=frames, faces=faces)
    (folder / "broken.mp4").write_bytes(b"not a video" * 100)
    (folder / "notes.txt").write_text("not a video, left alone")
    return folder


@pytest.fixture(scope="module")
def single_runs(clip_folder, tmp_path_factory):
    """Each clip's CSV as a run of its own writes it."""
    out = tmp_path_factory.mktemp("single")
    tables = {}
    for name in CLIPS:
        csv = out / (name.replace("/", "_") + ".csv")
        assert analyzer.main(["--source", str(clip_folder / name), "--csv", str(csv), "--no-display"]) == 0
        tables[name] = pd.read_csv(csv)
    return tables


def test_two_workers_write_each_clips_csv_as_its_own_run_does_and_a_rerun_redoes_only_what_is_missing(
        clip_folder, single_runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert analyzer.main(["--source", str(clip_folder), "--csv-dir", str(out), "--workers", "2"]) == 1
    captured = capsys.readouterr()
    assert "broken.mp4" in captured.err and "1 could not be read" in captured.out
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(f"{name}.csv" for name in CLIPS)  # nothing else: no partial, no temporary file
    for name, expected in single_runs.items():
        pd.testing.assert_frame_equal(pd.read_csv(out / f"{name}.csv"), expected)
    kept = (out / "a.avi.csv").stat().st_mtime_ns
    (out / "sub/c.avi.csv").unlink()
    assert analyzer.main(["--source", str(clip_folder), "--csv-dir", str(out), "--workers", "2"]) == 1
    assert "3 already complete in" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(out / "sub/c.avi.csv"), single_runs["sub/c.avi"])
    assert (out / "a.avi.csv").stat().st_mtime_ns == kept  # a complete CSV is never redone


def test_the_api_reads_a_list_of_videos_into_one_table_on_workers(clip_folder, single_runs):
    from emotion_analyzer import EmotionRecognizer, UserError

    recognizer = EmotionRecognizer()
    paths = [clip_folder / name for name in CLIPS]
    one, two = recognizer.analyze_videos(paths), recognizer.analyze_videos(paths, workers=2)
    pd.testing.assert_frame_equal(one, two)
    assert list(one["source"].unique()) == [str(p) for p in paths]  # in the order given, by full path
    for name, path in zip(CLIPS, paths):
        mine = one[one["source"] == str(path)].drop(columns="source").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine.drop(columns="time_s"), single_runs[name].drop(columns=["source", "time_s"]),
                                      check_exact=False, atol=6e-5)
    with pytest.raises(UserError, match="broken.mp4"):
        recognizer.analyze_videos([clip_folder / "broken.mp4"])


def videos_in(folder, count, frames, faces):
    """`count` clips of `frames` frames each, 0.avi, 1.avi, ..., in a new `folder`."""
    folder.mkdir()
    for index in range(count):
        write_face_video(folder / f"{index}.avi", frames=frames, faces=faces)
    return folder


def wait_for(out, pattern, process, seconds=240):
    """Until a file matching `pattern` is under `out` (or the process ends, or `seconds` pass)."""
    deadline = time.monotonic() + seconds
    while not list(out.rglob(pattern)) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_stop_keeps_what_was_read_of_each_file_under_way_and_a_rerun_goes_on_from_there(tmp_path, project_root):
    folder = videos_in(tmp_path / "long", 2, frames=240, faces=2)
    out = tmp_path / "out"
    command = [sys.executable, str(project_root / "analyzer.py"), "--source", str(folder), "--csv-dir", str(out),
               "--workers", "2"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline and not any(
            p.stat().st_size for p in out.rglob("*.tmp.partial")):  # rows reached the disk: frames were read
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "kept what was read of" in err and "Traceback" not in err
    assert not list(out.rglob("*.tmp.*"))  # no temporary file
    kept = {}
    for record in out.rglob("*.partial.json"):
        rows = pd.read_csv(record.with_suffix(""))
        frames = json.loads(record.read_text())["frames"]
        assert 0 < frames < 240 and sorted(rows["frame"].unique()) == list(range(frames))
        kept[record.name.split(".partial")[0]] = rows
    assert kept, "no file under way was kept"
    assert {p.name for p in out.iterdir()} <= {f"{n}.avi.csv{end}" for n in (0, 1) for end in ("", ".partial",
                                                                                              ".partial.json")}

    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"frames: 100%.*\b(\d+)/\1 .*files=(\d)/\2", done.stderr), done.stderr[-1000:]
    assert sorted(p.name for p in out.iterdir()) == ["0.avi.csv", "1.avi.csv"]
    clean = tmp_path / "clean.csv"
    assert analyzer.main(["--source", str(folder / "0.avi"), "--csv", str(clean), "--no-display"]) == 0
    seconds = pd.read_csv(clean).groupby("frame")["time_s"].first()
    for name, rows in kept.items():
        whole = pd.read_csv(out / name)
        pd.testing.assert_frame_equal(whole.iloc[:len(rows)], rows)  # what was kept is kept as it was
        assert sorted(whole["frame"].unique()) == list(range(240))  # every frame once, none twice
        pd.testing.assert_series_equal(whole.groupby("frame")["time_s"].first(), seconds)  # true timestamps
        assert whole.iloc[len(rows):]["face"].min() > rows["face"].max()  # faces after the stop are new ones


def test_progress_inside_a_file_is_reported_from_its_first_frame(tmp_path):
    from emotion_analyzer.analysis.analyzer import AnalyzerSettings
    from emotion_analyzer.scale.files import analyze_one, frames_in
    from emotion_analyzer.scale.folder import each_result

    video = tmp_path / "clip.avi"
    write_face_video(video, frames=30, faces=1)
    assert frames_in(video) == 30 and frames_in(tmp_path / "no such video.avi") == 0
    reports = []
    (result,) = each_result(analyze_one, [(video, tmp_path / "clip.avi.csv")], AnalyzerSettings(), workers=1,
                            report=lambda source, frames: reports.append((source, frames)))
    assert result.frames == 30 and reports[0] == (str(video), 1)
    assert [frames for _, frames in reports] == sorted(frames for _, frames in reports)


def test_on_a_local_ray_cluster_the_same_csvs(clip_folder, single_runs, tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="Ray is an extra: pip install .[ray] (requirements-dev.txt has it)")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # auto: a cluster of its own, here
    out = tmp_path / "out"
    assert analyzer.main(["--source", str(clip_folder), "--csv-dir", str(out), "--ray", "auto"]) == 1  # the broken file
    for name, expected in single_runs.items():
        pd.testing.assert_frame_equal(pd.read_csv(out / f"{name}.csv"), expected)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(f"{n.split('/')[-1]}.csv" for n in CLIPS)


def test_ray_and_workers_need_a_folder_run(capsys):
    assert analyzer.main(["--source", "0", "--ray", "auto"]) == 2
    assert "give --csv-dir OUT too" in capsys.readouterr().err


NATIVE_CHECK = """
import sys
from emotion_analyzer.commands.analyze import main
code = main(sys.argv[1:])
print("tensorflow imported:", "tensorflow" in sys.modules)
raise SystemExit(code)
"""


def native_log_lines(stderr):
    return [line for line in stderr.splitlines() if "absl" in line or line[:1] in "IWE" and line[1:5].isdigit()]


def test_a_rerun_with_nothing_left_starts_no_tensorflow_and_one_left_starts_it_quietly(fresh_model, tmp_path,
                                                                                       project_root):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.avi", "b.avi"):
        write_face_video(folder / name, frames=4, faces=1, width=320, height=240, size=100)
    out = tmp_path / "out"
    assert analyzer.main(["--source", str(folder), "--csv-dir", str(out), "--model", str(fresh_model)]) == 0
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it

    def rerun():
        return subprocess.run([sys.executable, "-c", NATIVE_CHECK, "--source", str(folder), "--csv-dir", str(out),
                               "--model", str(fresh_model), "--workers", "2"], cwd=project_root, env=env,
                              capture_output=True, text=True, timeout=300)

    done = rerun()
    assert done.returncode == 0 and "2 already complete" in done.stdout, done.stderr
    assert "tensorflow imported: False" in done.stdout
    (out / "b.avi.csv").unlink()  # one file left: read in this process, not a worker's
    done = rerun()
    assert done.returncode == 0 and "1 already complete" in done.stdout, done.stderr
    assert (out / "b.avi.csv").is_file() and native_log_lines(done.stderr) == [], done.stderr


def test_a_quiet_folder_run_prints_nothing_and_writes_every_csv(fresh_model, tmp_path, capsys):
    folder, out = tmp_path / "clips", tmp_path / "out"
    folder.mkdir()
    for name in ("a.avi", "b.avi"):
        write_face_video(folder / name, frames=4, faces=1, width=320, height=240, size=100)
    assert analyzer.main(["--source", str(folder), "--csv-dir", str(out), "--model", str(fresh_model),
                          "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert sorted(p.name for p in out.iterdir()) == ["a.avi.csv", "b.avi.csv"]


def worker_processes(parent):
    """The pool's worker processes under `parent` (not multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if int(fields[1]) == parent and b"spawn_main" in command and b"resource_tracker" not in command:
            found.append(int(stat.parent.name))
    return found


def test_a_worker_killed_mid_file_ends_the_run_naming_what_was_lost_and_a_rerun_reads_it(tmp_path, project_root):
    folder = videos_in(tmp_path / "long", 3, frames=200, faces=2)
    out = tmp_path / "out"
    command = [sys.executable, str(project_root / "analyzer.py"), "--source", str(folder), "--csv-dir", str(out),
               "--workers", "2"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wait_for(out, "*.partial", process)  # a worker is reading a file
    workers = worker_processes(process.pid)
    assert workers, "no worker process found"
    os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer does
    out_text, err = process.communicate(timeout=120)  # bounded: the run does not wait for the dead worker
    last = err.splitlines()[-1]  # after the progress lines a log gets
    assert process.returncode == 2 and last.startswith("error: a worker process died") and "Traceback" not in err
    assert "run the same command again" in last and "absl" not in err, err
    lost = last.split(" not read: ")[1].split(";")[0].split(", ")
    assert lost and all(name.endswith(".avi") for name in lost)
    # The pool stops the surviving worker too: mid-file it keeps what it read (a partial CSV with its
    # record, for the rerun to go on from), between files it leaves nothing; never a partial without one.
    from emotion_analyzer.scale.files import partial_paths

    left = {p for p in out.rglob("*") if p.is_file() and p.suffix != ".csv"}
    pairs = [set(partial_paths(out / f"{n}.avi.csv")) for n in range(3)]
    assert set().union(*(pair for pair in pairs if pair <= left)) == left, left  # whole pairs, nothing else
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["0.avi.csv", "1.avi.csv", "2.avi.csv"]
    for csv in out.glob("*.csv"):  # a file continued from kept work is read whole, once
        assert sorted(pd.read_csv(csv)["frame"].unique()) == list(range(200)), csv.name


def test_workers_are_capped_by_the_memory_there_is():
    from emotion_analyzer.scale.folder import workers_that_fit

    said = []
    assert workers_that_fit(64, said.append, available=5.5) == 5
    assert "--workers 64: each worker holds about 1 GB and 5.5 GB is available; using 5" == said[0]
    assert workers_that_fit(2, said.append, available=5.5) == 2 and len(said) == 1
    assert workers_that_fit(3, said.append, available=0.4) == 1


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_finishes(tmp_path, project_root):
    folder = videos_in(tmp_path / "clips", 2, frames=120, faces=1)
    out = tmp_path / "out"
    command = [sys.executable, str(project_root / "analyzer.py"), "--source", str(folder), "--csv-dir", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wait_for(out, "*.partial", first)
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"--csv-dir {out} is in use by another run (process {first.pid})" in second.stderr
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["0.avi.csv", "1.avi.csv"]  # lock gone
    for csv in out.glob("*.csv"):
        assert pd.read_csv(csv)["frame"].nunique() == 120


def test_a_run_that_died_leaves_its_folder_free(tmp_path):
    from emotion_analyzer.common.fileio import IN_USE_FILE, used_alone

    (tmp_path / IN_USE_FILE).write_text("999999\n")  # left by a run killed with SIGKILL: no lock held
    with used_alone(tmp_path, "--csv-dir"):
        with pytest.raises(UserError, match=f"in use by another run \\(process {os.getpid()}\\)"):
            with used_alone(tmp_path, "--csv-dir"):
                pass


def test_linked_subfolders_photos_added_later_and_videos_changed_since_are_read(tmp_path, project_root):
    from demo_media import compose_frame, write_image

    folder, elsewhere, out = tmp_path / "clips", tmp_path / "other_disk", tmp_path / "out"
    folder.mkdir()
    elsewhere.mkdir()
    write_face_video(folder / "a.avi", frames=6, faces=1)
    write_image(folder / "happy" / "1.jpg", compose_frame(0, faces=1)[0])
    write_face_video(elsewhere / "b.avi", frames=6, faces=1)
    write_image(elsewhere / "2.jpg", compose_frame(1, faces=1)[0])
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(folder, target_is_directory=True)  # a link back up: read once
    command = [sys.executable, str(project_root / "analyzer.py"), "--source", str(folder), "--csv-dir", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def rerun():
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.splitlines()[0]

    assert "3 file(s), 0 already complete" in rerun()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv")) == ["a.avi.csv", "linked/b.avi.csv",
                                                                                 "photos.csv"]
    assert set(pd.read_csv(out / "photos.csv")["source"]) == {"happy/1.jpg", "linked/2.jpg"}
    assert "3 file(s), 3 already complete" in rerun()
    write_image(folder / "happy" / "3.jpg", compose_frame(2, faces=1)[0])
    old = (folder / "happy" / "1.jpg").stat()
    os.utime(folder / "happy" / "3.jpg", ns=(old.st_atime_ns, old.st_mtime_ns))  # copied with its old date
    write_face_video(folder / "a.avi", frames=9, faces=1)  # recorded on after it was read
    assert "3 file(s), 1 already complete" in rerun()
    assert set(pd.read_csv(out / "photos.csv")["source"]) == {"happy/1.jpg", "happy/3.jpg", "linked/2.jpg"}
    assert pd.read_csv(out / "a.avi.csv")["frame"].nunique() == 9


def test_a_video_that_changes_while_it_is_read_gets_no_csv(tmp_path):
    from emotion_analyzer.scale.files import analyze_one

    video = tmp_path / "recording.avi"
    write_face_video(video, frames=3, faces=1)

    class StillRecording:
        def run(self, source, outputs):
            outputs.csv.write_text("source,frame\n")
            with open(video, "ab") as handle:
                handle.write(b"\0" * 1000)  # the camera app writes on
            from emotion_analyzer.analysis.stats import RunStats

            return RunStats()

    result = analyze_one(StillRecording(), video, tmp_path / "recording.avi.csv")
    assert "changed while it was read (still being recorded?)" in result.error
    assert list(tmp_path.iterdir()) == [video]


def test_a_ray_cluster_with_token_authentication_names_the_missing_token(tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="Ray is an extra: pip install .[ray] (requirements-dev.txt has it)")
    from emotion_analyzer.scale.ray_actors import connect

    ray_command = Path(sys.executable).with_name("ray")
    token = "0123456789abcdef0123456789abcdef"
    cluster = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    port = "6391"
    started = subprocess.run([str(ray_command), "start", "--head", "--port", port, "--include-dashboard=false",
                              "--disable-usage-stats"], env=cluster, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token either
        with pytest.raises(UserError, match="asks for an authentication token and none was given: set"
                                            " RAY_AUTH_MODE=token and RAY_AUTH_TOKEN"):
            connect(f"127.0.0.1:{port}")
    finally:
        subprocess.run([str(ray_command), "stop", "--force"], env=cluster, capture_output=True, timeout=120)
