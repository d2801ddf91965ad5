"""``cxrsynth audit``: is the synthetic data anonymous, and is it any good? Measured, not assumed.

``embed.py`` (the embeddings every distance uses), ``privacy.py`` (linkage, SSIM, DCR, NNDR,
authenticity, copying: pure functions on arrays, and the binomial / bootstrap tests), ``verdicts.py``
(the thresholds table and the calibrated verdicts, worse of the embeddings), ``quality.py`` (KID, FID,
precision / recall / density / coverage on equal-size subsamples; Inception through torch-fidelity from
a local file), ``run.py`` (the audit of a release: ``audit.json``, per-image scores, figures, report
and card sections).
"""
