"""``cxrsynth benchmark``: the real / real+synthetic / synthetic-only protocol against any classifier.

``metrics.py`` (pure functions), ``classifiers.py`` (torchvision backbones with the paper's head),
``fit.py`` (training one arm and seed), ``arms.py`` (what each arm trains on), ``run.py`` (the whole
benchmark, resumable), ``figures.py`` and ``report.py`` (tables, figures, report.html).
"""
