"""``cxrsynth audit``: is the synthetic data anonymous, and is it any good? Measured, not assumed.

``embed.py`` (the feature extractor every distance uses), ``privacy.py`` (linkage, similarity, DCR,
NNDR, authenticity, copying, inverse recovery: pure functions on arrays), ``quality.py`` (FID, KID,
precision / recall / density / coverage, pixel statistics), ``run.py`` (the audit of a release:
``audit.json``, per-image scores, figures, report and card sections).
"""
