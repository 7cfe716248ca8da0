"""Sort a raw dataset into one folder per emotion: `python clean_data.py --help`.

Its options and code are in emotion_analyzer/commands/clean.py.
"""

from emotion_analyzer.commands.clean import main

if __name__ == "__main__":
    raise SystemExit(main())
