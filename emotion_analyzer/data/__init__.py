"""Data preparation: label vocabulary, raw layouts collected, the sorted folders, the crowd's votes, arrays, and the prepared set (prepared: the contract with training)."""
