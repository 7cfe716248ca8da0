"""EmotionAnalyzer: the code shared by clean_data.py, prep_data.py, training.py and analyzer.py."""
