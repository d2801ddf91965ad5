"""``cxrsynth benchmark``: the real / real+synthetic / synthetic-only protocol against any classifier.

``metrics.py`` (pure functions), ``fit.py`` (training one arm and seed), ``arms.py`` (what each arm trains on), ``run.py`` (the whole
benchmark, resumable), ``figures.py`` and ``report.py`` (tables, figures, report.html). The classifiers
themselves (torchvision backbones with the paper's head) are in ``cxrsynth/measure/classifiers.py``: the audit
embeds images with them too, and a stage does not import another stage's internals.
"""
