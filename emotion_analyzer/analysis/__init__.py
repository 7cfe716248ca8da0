"""Analysis: capture, face detection, tracking, classification engines, smoothing, drawing, the window, outputs, run statistics and the Analyzer."""
