"""What the report's model figures need, computed where the model is: in the cell, beside ``result.json``.

The report is a renderer: it reads files and builds no model. So each seed-0 cell writes
``figure_inputs.npz`` next to its ``result.json``, with

- ``umap_features`` / ``umap_groups``: the classifier's pooled features of the paper's Fig. 8 image set
  (up to 180 training images each of negatives, real COVID-19 and the task's synthetic COVID-19) and
  each image's group (0, 1, 2);
- ``cam_images`` / ``cam_maps`` / ``cam_scores``: up to four correctly classified COVID-19 test images,
  their Grad-CAM maps on the model's last convolutional layer (pytorch-grad-cam) and their scores
  (``cam_layer``: 0 when the model has no convolutional layer).

The test scores themselves are already in ``result.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...core.extras import require
from ...core.paths import atomic_path
from .arms import Cached, eval_items
from .fit import predict

FILE = "figure_inputs.npz"
UMAP_PER_GROUP = 180  # the paper's Fig. 8
CAM_IMAGES = 4


def path_in(run_dir: str | Path) -> Path:
    return Path(run_dir) / FILE


def umap_set(data, task: str, release, size: int, limit: int | None):
    """The paper's Fig. 8 groups: up to 180 training images each of the negatives, real COVID-19 and
    synthetic COVID-19 of the task's own translator (when a release is given); -> (dataset, group).
    ``data``: the records and split (:class:`~.inputs.SplitData`, or a work folder path)."""
    from ..load.loader import ArmDataset, synthetic_config
    from ...core.vocab import TASK_CONFIG

    n = min(UMAP_PER_GROUP, limit) if limit else UMAP_PER_GROUP
    train = eval_items(data, task, "train")
    rng = np.random.default_rng(0)  # a fixed draw across collections, not the first rows of one of them
    real = []
    for lab in (0, 1):
        mine = [(i.path, i.label) for i in train if i.label == lab]
        real += [mine[k] for k in sorted(rng.choice(len(mine), size=min(n, len(mine)), replace=False))]
    synth = []
    if release:
        ds = synthetic_config(release, TASK_CONFIG[task])
        synth = [ds.select(range(min(n, len(ds))))]
    arm = ArmDataset(real, synth, size)
    group = np.asarray([lab if o == "real" else 2 for lab, o in zip(arm.labels, arm.origins)])
    return Cached(arm), group


def _grad_cams(model, test_ds, test_labels, test_scores, threshold: float, device) -> dict[str, np.ndarray]:
    correct = [i for i, (y, s) in enumerate(zip(test_labels, test_scores)) if y == 1 and s >= threshold][:CAM_IMAGES]
    images = np.stack([test_ds[i][0][0].numpy() for i in correct]).astype(np.float16) if correct else np.zeros((0, 1, 1))
    scores = np.asarray([test_scores[i] for i in correct], dtype=np.float32)
    if not correct or model.cam_layer is None:
        return {"cam_images": images, "cam_maps": np.zeros((0, 1, 1), np.float16), "cam_scores": scores,
                "cam_layer": np.asarray(int(model.cam_layer is not None))}
    require("pytorch_grad_cam", "the benchmark's Grad-CAM figures", "--set figures=false")
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model.eval()
    maps = []
    with GradCAM(model=model, target_layers=[model.cam_layer]) as cam:
        for i in correct:
            x = test_ds[i][0].unsqueeze(0).to(device)
            maps.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(1)])[0])
    return {"cam_images": images, "cam_maps": np.stack(maps).astype(np.float16), "cam_scores": scores,
            "cam_layer": np.asarray(1)}


def write(run_dir: Path, model: torch.nn.Module, res: dict, test_ds, data, release, size: int,
          limit: int | None, device) -> Path:
    """Compute and write ``figure_inputs.npz`` for a scored cell (``res``: its result)."""
    umap_ds, groups = umap_set(data, res["task"], release, size, limit)
    feats = predict(model, umap_ds, device, features=True)["features"].astype(np.float32)
    cams = _grad_cams(model, test_ds, res["test_labels"], res["test_scores"], res["threshold"], device)
    path = path_in(run_dir)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, umap_features=feats, umap_groups=groups, **cams)
    return path


def read(run_dir: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cell's ``figure_inputs.npz``, or ``None`` when it has none (figures were off)."""
    path = path_in(run_dir)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
