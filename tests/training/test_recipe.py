import pytest

from emotion_analyzer.commands import train as training
from emotion_analyzer.errors import UserError
from emotion_analyzer.training.recipe import changed_fields, option_name, Recipe, recipe_from_saved, RETIRED_OPTIONS


def test_original_recipe_is_the_original_run():
    recipe = training.recipe_from_args(training.parse_args(["--original"]))
    assert (recipe.epochs, recipe.batch_size, recipe.augment, recipe.label_smoothing, recipe.schedule) == \
        (12, 64, "none", 0.0, "constant")
    assert recipe.scaling == "unit"  # pixels / 255
    assert (recipe.optimizer, recipe.learning_rate) == ("adam", 1e-3)  # whatever the default becomes
    assert not recipe.batch_norm and recipe.precision == "float32" and recipe.erase == 0


@pytest.mark.parametrize("field, value, message", [
    ("augment", "wild", "--augment wild: expected one of none, light, mild, strong"),
    ("optimizer", "rmsprop", "--optimizer rmsprop"),
    ("precision", "float16", "--precision float16"),
    ("val_split", 0.6, "--val-split 0.6"),
    ("learning_rate", 0.0, "--lr 0.0"),
    ("erase", 1.5, "--erase 1.5"),
    ("patience", -1, "--patience -1"),
])
def test_settings_out_of_range_are_refused_naming_the_flag(field, value, message):
    recipe = Recipe()
    setattr(recipe, field, value)
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        recipe.check()


def test_a_saved_recipe_from_an_older_version_resumes_with_what_was_then_the_only_choice():
    saved = {"epochs": 30, "batch_size": 64, "learning_rate": 0.001, "schedule": "cosine", "augment": "light",
             "label_smoothing": 0.1, "class_weight": False, "val_split": 0.1, "patience": 6, "tta": True,
             "seed": 1, "padding": "valid", "init": "glorot", "ema": 0.0, "warmup": 0, "strategy": "default"}
    recipe = recipe_from_saved(saved)
    assert recipe.scaling == "unit" and recipe.optimizer == "adam" and not recipe.batch_norm
    assert recipe.tta == "flip" and recipe.batch_size == 64


@pytest.mark.parametrize("name, value", [("mixup", 0.2), ("ema", 0.998), ("padding", "same"), ("init", "he"),
                                         ("teacher", "res/emotion_model.keras")])
def test_a_run_that_used_a_retired_option_is_refused(name, value):
    assert RETIRED_OPTIONS[name] != value
    with pytest.raises(UserError, match=f"{option_name(name)} {value}, retired"):
        recipe_from_saved({"epochs": 3, name: value})


def test_changed_fields_names_only_what_differs():
    assert changed_fields(Recipe(), {"epochs": 30, "learning_rate": 0.01, "batch_norm": True}) == \
        ["learning_rate", "batch_norm"]
