"""Load: a release's synthetic images and real ones as torch datasets (``cxrsynth.load``); the benchmark trains on what it gives."""
