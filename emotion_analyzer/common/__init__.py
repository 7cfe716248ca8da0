"""Shared plumbing: one-line errors and progress (cli), atomic files and the restricted pickle loader (fileio), stop signals (stops), the device and TensorFlow's start (device), plots."""
