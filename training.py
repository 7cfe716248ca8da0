"""Train the emotion CNN, evaluate it and save it with its evidence: `python training.py --help`.

Its options and code are in emotion_analyzer/commands/train.py.
"""

from emotion_analyzer.commands.train import main

if __name__ == "__main__":
    raise SystemExit(main())
