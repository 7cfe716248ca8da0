"""The training recipe: every choice that decides how a model is trained, and its checks.

A run saves its recipe, so --resume repeats it. Nothing here imports TensorFlow, so the script checks
its flags before the slow start.
"""

from dataclasses import dataclass, fields

from emotion_analyzer import config
from emotion_analyzer.core.views import TTA_VIEWS
from emotion_analyzer.training.distribute import STRATEGY as STRATEGY_MULTIWORKER
from emotion_analyzer.errors import UserError
from emotion_analyzer.core.model import INPUT_SCALINGS

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
STRATEGIES = ("default", "mirrored", STRATEGY_MULTIWORKER)

# What --resume may change: the length of the schedule, the test-time views of the evaluation, and
# the precision of the arithmetic (the weights are float32 either way; the next machine may differ).
CHANGEABLE_ON_RESUME = ("epochs", "tta", "precision")

# Options retired because their experiments lost (docs/experiments.md), with the value that meant
# "off": a run saved with them off resumes; a run that used one needs the version that started it.
RETIRED_OPTIONS = {"padding": "valid", "init": "glorot", "ema": 0.0, "warmup": 0, "self_distill": 0.0, "mixup": 0.0}
# A run saved before an option existed trained with what was then the only choice.
BEFORE_OPTION_EXISTED = {"scaling": "unit", "weight_decay": 0.0, "erase": 0.0, "optimizer": "adam",
                         "batch_norm": False, "precision": "float32", "equalize": False, "crowd": 0.0}


@dataclass
class Recipe:
    """Everything that decides how a model is trained; saved with the run so --resume repeats it."""
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 5e-4     # chosen over 1e-3 and 2e-3 on validation (docs/experiments.md)
    optimizer: str = "adam"         # adam | sgd (Nesterov, momentum SGD_MOMENTUM)
    schedule: str = "cosine"        # cosine | plateau | constant
    augment: str = "light"          # a key of AUGMENTATIONS
    erase: float = 0.0              # chance that a training image gets one rectangle blanked out; 0 = off
    label_smoothing: float = 0.1
    crowd: float = 0.5              # share of the FER+ crowd's vote distribution in each target; 0 = labels only
    weight_decay: float = 0.0       # decoupled decay per step, times the learning rate; 0 = off
    batch_norm: bool = False        # batch normalisation after each conv and dense layer (folded away when saved)
    class_weight: bool = False
    val_split: float = 0.1
    patience: int = 6               # early stopping on validation accuracy; 0 = off
    tta: str = "shifts"             # test-time views averaged in evaluation: none | flip | shifts
    scaling: str = "standardize"    # input normalisation inside the model: standardize (per image) | center | unit
    equalize: bool = True           # train and test on histogram-equalized faces, as the analyzer reads them
    precision: str = "auto"         # auto | float32 | bfloat16 (mixed: bfloat16 compute, float32 weights and output)
    strategy: str = "default"
    seed: int = config.DEFAULT_SEED

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
        return self


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
