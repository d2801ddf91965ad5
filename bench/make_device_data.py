"""Make ``.device/data``: 256 px copies of part of the sample data, small enough to carry to the GPU
machine (its working tree is limited to 64 MiB). Not committed; run here before bench/gpu_check.sh."""

from __future__ import annotations

import csv

from PIL import Image

from cxrsynth.core.paths import REPO_ROOT, sample_data_dir


def main(n_nih: int = 400) -> None:
    src, dst = sample_data_dir(), REPO_ROOT / ".device" / "data"
    nih = dst / "nih-chestxray14-sample"
    (nih / "images").mkdir(parents=True, exist_ok=True)
    rows = list(csv.reader(open(src / "nih-chestxray14-sample" / "Data_Entry_2017.csv")))
    keep = [rows[0]]
    for r in rows[1:]:
        if len(keep) > n_nih:
            break
        if r[4].isdigit() and int(r[4]) >= 18:
            Image.open(src / "nih-chestxray14-sample/images" / r[0]).convert("L").resize((256, 256)).save(nih / "images" / r[0])
            keep.append(r)
    csv.writer(open(nih / "Data_Entry_2017.csv", "w", newline="")).writerows(keep)
    cov = dst / "covid-chestxray-dataset"
    (cov / "images").mkdir(parents=True, exist_ok=True)
    (cov / "metadata.csv").write_bytes((src / "covid-chestxray-dataset" / "metadata.csv").read_bytes())
    for r in csv.DictReader(open(src / "covid-chestxray-dataset" / "metadata.csv")):
        p = src / "covid-chestxray-dataset" / "images" / r["filename"]
        if r["modality"] == "X-ray" and p.is_file():
            Image.open(p).convert("L").resize((256, 256)).save(cov / "images" / r["filename"], quality=95)


if __name__ == "__main__":
    main()
