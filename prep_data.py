"""Turn the sorted images into the prepared set of arrays in data/: `python prep_data.py --help`.

Its options and code are in emotion_analyzer/commands/prep.py.
"""

from emotion_analyzer.commands.prep import main

if __name__ == "__main__":
    raise SystemExit(main())
