"""Map the many spellings of an emotion in public datasets onto one canonical vocabulary."""

from pathlib import Path

from emotion_analyzer.config import EMOTIONS
from emotion_analyzer.errors import UserError

SYNONYMS = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "contempt": "contempt",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy",
    "neutral": "neutral", "calm": "neutral",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
}


def parse_mapping(pairs):
    """Turn ['stressed=fear', ...] from --map into {'stressed': 'fear'}."""
    mapping = {}
    for pair in pairs or ():
        raw, sep, emotion = pair.partition("=")
        emotion = emotion.strip().lower()
        if not sep or not raw.strip():
            raise UserError(f"--map {pair!r}: expected LABEL=EMOTION, for example --map stressed=fear")
        if emotion not in EMOTIONS:
            raise UserError(f"--map {pair!r}: {emotion!r} is not an emotion; use one of {', '.join(EMOTIONS)}")
        mapping[raw.strip().lower()] = emotion
    return mapping


# What --exclude maps a dataset's own label to (one that is no emotion, such as 'stressed'), so
# collectors drop it like an excluded emotion instead of calling it unknown.
EXCLUDED_LABEL = "(excluded)"


def parse_exclusions(names, mapping):
    """Canonical names of the emotions to drop (--exclude, synonyms accepted). A name that is no emotion
    is a dataset's own label: it is added to `mapping` as EXCLUDED_LABEL, which is then dropped too."""
    excluded = {EXCLUDED_LABEL}
    for name in names or ():
        key = name.strip().lower()
        if not key:
            raise UserError("--exclude '': expected an emotion or one of the dataset's labels")
        if key in SYNONYMS:
            excluded.add(SYNONYMS[key])
        else:
            mapping[key] = EXCLUDED_LABEL
    return excluded


def canonical_emotion(label, extra_mapping=None):
    """The canonical name for a raw label, or None if nobody knows it."""
    key = str(label).strip().lower()
    if extra_mapping and key in extra_mapping:
        return extra_mapping[key]
    return SYNONYMS.get(key)


def unknown_label_error(unknown, seen, where):
    """The error for labels that map to no emotion: lists what was seen and how to fix it."""
    example = sorted(unknown)[0]
    return UserError(
        f"{where}: unknown emotion label(s) {', '.join(repr(u) for u in sorted(unknown))}"
        f" (labels seen: {', '.join(sorted(seen))}). Map them with --map {example}=EMOTION"
        f" or drop them with --exclude {example}."
    )


def emotion_folders(folder):
    """{emotion: subfolder} for the subfolders of `folder` named after an emotion (neutral/, Happy/, ...)."""
    return {canonical_emotion(p.name): p for p in sorted(Path(folder).iterdir())
            if p.is_dir() and canonical_emotion(p.name)}
