"""The commands: each script's options and what it runs; clean_data.py, prep_data.py, training.py and analyzer.py are shims over these."""
