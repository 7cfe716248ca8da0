import json

import pytest

from emotion_analyzer.errors import UserError
from emotion_analyzer.training.recipe import Recipe
from emotion_analyzer.training.runs import data_dir_of, model_path_of, new_run_dir, new_state


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    import datetime

    from emotion_analyzer.training import runs

    class SameSecond(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 11, 26, 3, 0, 0)

    monkeypatch.setattr(runs.datetime, "datetime", SameSecond)
    folders = [new_run_dir(tmp_path) for _ in range(3)]
    assert len(set(folders)) == 3 and all(folder.is_dir() for folder in folders)
    assert [f.name for f in folders] == ["20261126-030000", "20261126-030000-2", "20261126-030000-3"]


def test_a_resumed_run_saves_where_it_was_started_to_save(tmp_path):
    state = {"model": str(tmp_path / "mine.keras")}
    assert model_path_of(state, tmp_path) == tmp_path / "mine.keras"
    assert model_path_of(state, tmp_path, tmp_path / "other.keras") == tmp_path / "other.keras"
    with pytest.raises(UserError, match="pass --model PATH with --resume"):
        model_path_of({}, tmp_path)  # a run from before runs remembered it: never the shipped model by default


def test_a_resumed_run_goes_on_with_its_own_prepared_set_and_refuses_a_changed_one(tmp_path, make_prepared_data):
    data = make_prepared_data(tmp_path / "data", n_train=24, n_test=12)
    state = json.loads(json.dumps(new_state(Recipe(), ["angry"], None, tmp_path / "m.keras", data)))  # as saved
    assert data_dir_of(state, tmp_path / "run") == data  # from any folder, without --data
    assert data_dir_of(state, tmp_path / "run", tmp_path / "data") == tmp_path / "data"
    make_prepared_data(tmp_path / "data", n_train=24, n_test=12, seed=1)  # prep_data.py ran again meanwhile
    with pytest.raises(UserError, match="is not the prepared set .* was trained on"):
        data_dir_of(state, tmp_path / "run")
    with pytest.raises(UserError, match="is not the prepared set"):
        data_dir_of(state, tmp_path / "run", make_prepared_data(tmp_path / "other", n_train=24, n_test=12, seed=2))


def test_a_run_from_before_runs_remembered_their_data_asks_for_it(tmp_path, monkeypatch):
    from emotion_analyzer import config

    monkeypatch.setattr(config, "DEFAULT_DATA_DIR", tmp_path / "no-data-here")
    with pytest.raises(UserError, match="pass --data FOLDER with --resume"):
        data_dir_of({"model": str(tmp_path / "m.keras")}, tmp_path / "run")
    assert data_dir_of({}, tmp_path / "run", tmp_path / "mine") == tmp_path / "mine"
