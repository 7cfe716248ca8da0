"""The analyzer from a checkout: `python analyzer.py --help` (installed by pip: `emotion-analyzer --help`).

Its options and code are in emotion_analyzer/commands/analyze.py, so both run the same command.
"""

from emotion_analyzer.commands.analyze import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python analyzer.py"))
