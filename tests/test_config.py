import subprocess
import sys
from pathlib import Path

from emotion_analyzer import config


def test_model_json_names_project_folders_relative_to_the_project(tmp_path):
    assert config.portable_path(config.DEFAULT_DATA_DIR) == "data"
    assert config.portable_path(config.PROJECT_ROOT / "runs" / "20261124-003241") == "runs/20261124-003241"
    assert config.portable_path(tmp_path / "data") == str(tmp_path / "data")


def test_in_the_checkout_the_defaults_are_its_folders_and_the_shipped_model_is_there(project_root):
    assert config.IN_CHECKOUT and config.PROJECT_ROOT == project_root
    assert config.DEFAULT_DATA_DIR == project_root / "data" and config.DEFAULT_RUNS_DIR == project_root / "runs"
    assert config.DEFAULT_MODEL_PATH.is_file() and config.model_info_path(config.DEFAULT_MODEL_PATH).is_file()
    assert config.model_info_path(Path("runs/m.keras")) == Path("runs/m.json")


def test_installed_alone_the_package_reads_its_own_model_and_writes_in_the_current_folder(tmp_path):
    package = tmp_path / "site-packages" / "emotion_analyzer"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "config.py").write_text((Path(config.__file__)).read_text())
    work = tmp_path / "work"
    work.mkdir()
    code = ("from emotion_analyzer import config as c; print(c.IN_CHECKOUT); print(c.DEFAULT_MODEL_PATH);"
            " print(c.DEFAULT_DATA_DIR.resolve()); print(c.DEFAULT_SNAPSHOT_DIR.resolve())")
    done = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(package.parent), "PATH": ""})
    assert done.stdout.split("\n")[:4] == ["False", str(package / "res" / "emotion_model.keras"),
                                           str(work.resolve() / "data"), str(work.resolve() / "snapshots")]


def test_the_face_the_model_reads_is_one_grey_channel_of_the_image_size():
    assert config.FACE_SHAPE == (config.IMAGE_SIZE, config.IMAGE_SIZE, 1) == (48, 48, 1)
    assert set(config.FER2013_CODES.values()) <= set(config.EMOTIONS) and len(config.FER2013_CODES) == 7
    assert list(config.EMOTIONS) == sorted(config.EMOTIONS)  # class numbers follow this order
