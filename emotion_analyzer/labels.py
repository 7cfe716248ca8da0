"""Map the many spellings of an emotion in public datasets onto one canonical vocabulary."""

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


def parse_exclusions(names):
    """Canonical names of the emotions to drop (--exclude), accepting synonyms."""
    excluded = set()
    for name in names or ():
        emotion = SYNONYMS.get(name.strip().lower())
        if emotion is None:
            raise UserError(f"--exclude {name!r}: not an emotion; use one of {', '.join(EMOTIONS)}")
        excluded.add(emotion)
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
