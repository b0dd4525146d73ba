"""The `journey` console script (journey.py) and what it is made of: the frames it
sends (frames.py), its setup file (setup_file.py), a run and its text (trace.py),
the comparison of two targets (diff.py). docs/journey-command.md is the manual."""
