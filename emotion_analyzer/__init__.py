"""EmotionAnalyzer: the code shared by clean_data.py, prep_data.py, training.py and analyzer.py, and the
library API, `from emotion_analyzer import EmotionRecognizer` (recognizer.py)."""

__all__ = ["AnalysisStopped", "EmotionRecognizer", "UserError", "__version__"]

from emotion_analyzer.config import VERSION as __version__  # noqa: E402  (config imports nothing heavy)


def __getattr__(name):
    # Imported when first used, so importing the package (as every script does) loads nothing heavy.
    if name in ("EmotionRecognizer", "AnalysisStopped"):
        from emotion_analyzer import recognizer
        return getattr(recognizer, name)
    if name == "UserError":
        from emotion_analyzer.errors import UserError
        return UserError
    raise AttributeError(f"module 'emotion_analyzer' has no attribute {name!r}")
