"""The training recipe: every choice that decides how a model is trained, and its checks.

A run saves its recipe, so --resume repeats it. Nothing here imports TensorFlow, so the script checks
its flags before the slow start.
"""

from dataclasses import dataclass, fields

from emotion_analyzer import config
from emotion_analyzer.common.cli import (non_negative_float, non_negative_int, positive_float, positive_int,
                                         probability)
from emotion_analyzer.common.settings import setting
from emotion_analyzer.core.views import TTA_SHIFT, TTA_VIEWS
from emotion_analyzer.training.distribute import STRATEGY as STRATEGY_MULTIWORKER
from emotion_analyzer.errors import UserError
from emotion_analyzer.core.model import check_model_file, INPUT_SCALINGS, reads_equalized

AUGMENTATIONS = {
    # (horizontal flip, translation fraction, rotation fraction of a turn, zoom fraction, camera
    # degradations: blur, noise and JPEG as degrade.py draws them)
    "none": None,
    "light": (True, 0.05, 0.0, 0.0, False),
    "mild": (True, 0.1, 0.03, 0.05, False),
    "strong": (True, 0.1, 0.05, 0.1, False),
    # Faces as webcams and web photos frame them: a box off by a few pixels, a head tilted up to 15
    # degrees, a face 15% nearer or farther, and the camera's own blur, noise and compression.
    "real": (True, 0.08, 15 / 360, 0.15, True),
}
SCHEDULES = ("cosine", "plateau", "constant")
OPTIMIZERS = ("adam", "sgd")
SGD_MOMENTUM = 0.9
# --precision: its Keras dtype policy; auto is resolved per machine (device.choose_precision).
PRECISIONS = {"auto": None, "float32": "float32", "bfloat16": "mixed_bfloat16"}
# multiworker: several machines, on Keras's JAX backend (cluster.py), since tf.distribute's multi-worker
# strategy fails at fit under Keras 3 ("unsupported type PerReplica", keras-team/keras issue 20585).
STRATEGY_MIRRORED = "mirrored"
STRATEGIES = ("default", STRATEGY_MIRRORED, STRATEGY_MULTIWORKER)

# What --resume may change: the length of the schedule, the test-time views of the evaluation, and
# the precision of the arithmetic (the weights are float32 either way; the next machine may differ).
CHANGEABLE_ON_RESUME = ("epochs", "tta", "precision")

# Options retired because their experiments lost (docs/experiments.md), with the value that meant
# "off": a run saved with them off resumes; a run that used one needs the version that started it.
RETIRED_OPTIONS = {"padding": "valid", "init": "glorot", "ema": 0.0, "warmup": 0, "self_distill": 0.0, "mixup": 0.0,
                   "teacher": ""}
# A run saved before an option existed trained with what was then the only choice.
BEFORE_OPTION_EXISTED = {"scaling": "unit", "weight_decay": 0.0, "erase": 0.0, "optimizer": "adam",
                         "batch_norm": False, "precision": "float32", "equalize": False, "crowd": 0.0,
                         "start_from": ""}


# Random erasing (Zhong et al., 2017): the blanked rectangle covers this fraction of the image and has
# an aspect ratio (height / width) in this range.
ERASE_AREA = (0.02, 0.2)
ERASE_ASPECT = (0.3, 3.3)


@dataclass
class Recipe:
    """Everything that decides how a model is trained; saved with the run so --resume repeats it. Each
    field is an option of training.py (option_name), its help the field's."""
    epochs: int = setting(30, "epochs in all", parse=positive_int)
    batch_size: int = setting(128, "batch size", parse=positive_int)
    # 5e-4: chosen over 1e-3 and 2e-3 on validation (docs/experiments.md)
    learning_rate: float = setting(5e-4, "learning rate", parse=positive_float)
    optimizer: str = setting("adam", f"adam, or sgd with Nesterov momentum {SGD_MOMENTUM}", choices=OPTIMIZERS)
    schedule: str = setting("cosine", "learning-rate schedule", choices=SCHEDULES)
    augment: str = setting("light", "on-the-fly augmentation strength", choices=tuple(AUGMENTATIONS))
    erase: float = setting(0.0, "random erasing: the chance that a training image gets one rectangle"
                                f" ({ERASE_AREA[0] * 100:.0f}-{ERASE_AREA[1] * 100:.0f}%% of it) blanked to its mean grey,"
                                " 0 = off", parse=probability, metavar="P")
    label_smoothing: float = setting(0.1, "label smoothing", parse=non_negative_float)
    # 0.63: where the measured trade-off meets 80% against the crowd's majority with 63% against FER2013's
    # labels (docs/experiments.md, the trade-off so far).
    crowd: float = setting(0.63, "the share of the FER+ crowd's votes in each face's target: 0 = the dataset's one"
                                " label, 1 = the crowd's vote distribution; faces without usable votes keep their"
                                " label (clean_data.py --votes)", parse=probability, metavar="W")
    weight_decay: float = setting(0.0, "decoupled weight decay: each step shrinks the weights by lr x this, 0 = off",
                                  parse=non_negative_float, metavar="F")
    batch_norm: bool = setting(False, "batch normalisation after each conv and dense layer while training; the saved"
                                      " model has it folded into those layers")
    class_weight: bool = setting(False, "weight classes by inverse frequency")
    val_split: float = setting(0.1, "stratified fraction of training held out for validation; 0 trains on all of it"
                                    " and keeps the last epoch", parse=non_negative_float)
    patience: int = setting(6, "early-stopping patience in epochs on validation accuracy, 0 = off",
                            parse=non_negative_int)
    tta: str = setting("shifts", "test-time views averaged in evaluation: none, flip (image and mirror) or shifts"
                                 f" (5 shifts of {TTA_SHIFT} pixels and their mirrors)", choices=tuple(TTA_VIEWS))
    scaling: str = setting("standardize", "how the model normalises its 0-255 input: unit = 0..1, center = -1..1,"
                                          " standardize = each image to mean 0, standard deviation 1",
                           choices=tuple(INPUT_SCALINGS))
    equalize: bool = setting(True, "train and test on histogram-equalized faces, as the analyzer reads them")
    precision: str = setting("auto", "bfloat16 = mixed precision: bfloat16 compute, float32 weights; faster only"
                                     " where the CPU computes bfloat16 natively (AMX, AVX-512 BF16), much slower"
                                     " elsewhere; auto = bfloat16 there and float32 elsewhere, the choice printed and"
                                     " saved with the run; the saved model is float32 either way",
                             choices=tuple(PRECISIONS))
    strategy: str = setting("default", "default: one device; mirrored: all GPUs of this machine; multiworker:"
                                       " several machines, one worker process each, on Keras's JAX backend"
                                       " (docs/scale_out.md)", choices=STRATEGIES)
    seed: int = setting(config.DEFAULT_SEED, "random seed")
    start_from: str = setting("", "fine-tune: begin from the weights of this trained .keras model (the same emotions"
                                  " and architecture, e.g. res/emotion_model.keras) instead of random ones",
                          metavar="MODEL")

    @classmethod
    def original(cls):
        """The original project's run: batch 64, 12 epochs, no augmentation, no validation tricks."""
        return cls(epochs=12, batch_size=64, learning_rate=1e-3, schedule="constant", augment="none",
                   label_smoothing=0.0, crowd=0.0, patience=0, tta="none", scaling="unit", equalize=False, precision="float32")

    @property
    def soft_targets(self):
        """Whether targets are distributions (smoothed labels, or the crowd's votes) rather than class indices."""
        return bool(self.label_smoothing or self.crowd)

    def check(self):
        """Raise a UserError naming the first setting out of range."""
        choices = {"augment": AUGMENTATIONS, "schedule": SCHEDULES, "optimizer": OPTIMIZERS,
                   "precision": PRECISIONS, "scaling": INPUT_SCALINGS, "strategy": STRATEGIES, "tta": TTA_VIEWS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"{option_name(name)} {getattr(self, name)}: expected one of {', '.join(allowed)}")
        if self.epochs < 1:
            raise UserError(f"--epochs {self.epochs}: train for at least one epoch")
        if self.batch_size < 1:
            raise UserError(f"--batch-size {self.batch_size}: expected a positive number")
        if not 0 <= self.val_split < 0.5:
            raise UserError(f"--val-split {self.val_split}: expected a fraction such as 0.1, or 0 to train on all")
        if not self.val_split and self.schedule == "plateau":
            raise UserError("--schedule plateau watches validation accuracy; with --val-split 0 use --schedule cosine")
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing {self.label_smoothing}: expected 0 to 1, such as 0.1")
        if not 0 <= self.crowd <= 1:
            raise UserError(f"--crowd {self.crowd}: expected a share from 0 (FER2013's labels) to 1 (the crowd's votes)")
        if self.learning_rate <= 0:
            raise UserError(f"--lr {self.learning_rate}: expected a positive number such as 0.001")
        if self.weight_decay < 0:
            raise UserError(f"--weight-decay {self.weight_decay}: expected 0 (off) or a positive number such as 0.05")
        if not 0 <= self.erase <= 1:
            raise UserError(f"--erase {self.erase}: expected a probability from 0 (off) to 1, such as 0.5")
        if self.patience < 0:
            raise UserError(f"--patience {self.patience}: expected 0 (off) or a number of epochs")
        if self.start_from and self.batch_norm:
            raise UserError(f"--start-from {self.start_from} with --batch-norm: a saved model has its batch norm"
                            " folded away, so there is none to start from; drop --batch-norm")
        return self


def check_start_from(recipe, categories):
    """The JSON of the model recipe.start_from names, checked without TensorFlow to fit this run: the
    same emotions in the same order, and inputs prepared the same way (the weights are checked as
    they are copied)."""
    path, info = check_model_file(recipe.start_from)
    problems = []
    if info["labels"] != list(categories):
        problems.append(f"its emotions are {', '.join(info['labels'])}, the data's {', '.join(categories)}")
    if reads_equalized(info) != recipe.equalize:
        theirs, ours = ("un" if not flag else "" for flag in (reads_equalized(info), recipe.equalize))
        problems.append(f"it reads {theirs}equalized faces, this recipe {ours}equalized ones"
                        f" (--{'' if recipe.equalize else 'no-'}equalize)")
    scaling = info.get("recipe", {}).get("scaling", recipe.scaling)
    if scaling != recipe.scaling:
        problems.append(f"it was trained with --scaling {scaling}, this recipe with {recipe.scaling}")
    if problems:
        raise UserError(f"--start-from {path}: {'; '.join(problems)}: start from a model that fits, or from random"
                        " weights (drop --start-from)")
    return info


OPTION_FOR_FIELD = {"learning_rate": "lr"}


def option_name(field_name):
    """The command-line flag of a Recipe field: learning_rate -> --lr, batch_size -> --batch-size."""
    return "--" + OPTION_FOR_FIELD.get(field_name, field_name).replace("_", "-")


def recipe_from_saved(saved):
    """The Recipe a run saved in its state.json, from any version of this project that can resume it."""
    used = [f"{option_name(name)} {value}" for name, value in saved.items()
            if name in RETIRED_OPTIONS and value != RETIRED_OPTIONS[name]]
    if used:
        raise UserError(f"this run used {', '.join(used)}, retired since (see docs/experiments.md); resume it with"
                        " the version of the project that started it (git log)")
    known = {field.name for field in fields(Recipe)}
    recipe = Recipe(**{**BEFORE_OPTION_EXISTED, **{k: v for k, v in saved.items() if k in known}})
    if isinstance(recipe.tta, bool):  # runs saved it as a flag before there were shift views
        recipe.tta = "flip" if recipe.tta else "none"
    return recipe


def changed_fields(saved, requested):
    """Names of the fields in `requested` ({field: value}) that differ from the `saved` Recipe."""
    return [name for name, value in requested.items() if value != getattr(saved, name)]
