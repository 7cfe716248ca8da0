from emotion_analyzer import config


def test_model_json_names_project_folders_relative_to_the_project(tmp_path):
    assert config.portable_path(config.DEFAULT_DATA_DIR) == "data"
    assert config.portable_path(config.PROJECT_ROOT / "runs" / "20261124-003241") == "runs/20261124-003241"
    assert config.portable_path(tmp_path / "data") == str(tmp_path / "data")
