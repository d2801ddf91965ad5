#!/usr/bin/env bash
# For maintainers with internet: fetch the real upstream sources into DEST (default ./upstream).
# Not run in tests. Needs git, the Kaggle CLI (`pip install kaggle`, ~/.kaggle/kaggle.json, and the
# competition rules accepted on kaggle.com) and about 50 GB of disk for NIH ChestX-ray14.
set -euo pipefail
DEST=${1:-upstream}
mkdir -p "$DEST"
cd "$DEST"

# 1. COVID-19 Image Data Collection, pinned to the commit the paper used (metadata.csv at a4409cf).
if [ ! -d covid-chestxray-dataset ]; then
  git clone https://github.com/ieee8023/covid-chestxray-dataset.git
  git -C covid-chestxray-dataset checkout a4409cf
fi

# 2. RSNA Pneumonia Detection Challenge (Kaggle): labels, class info and the stage 2 DICOMs.
if [ ! -d rsna-pneumonia-detection-challenge ]; then
  kaggle competitions download -c rsna-pneumonia-detection-challenge
  mkdir -p rsna-pneumonia-detection-challenge
  unzip -q rsna-pneumonia-detection-challenge.zip -d rsna-pneumonia-detection-challenge
fi

# 3. NIH ChestX-ray14 (https://nihcc.app.box.com/v/ChestXray-NIHCC): Data_Entry_2017.csv and the
#    12 images_XX.tar.gz archives. The Box links change; the NIH batch_download_zips.py script lists
#    them. Unpack every archive into nih-chestxray14/images/.
if [ ! -d nih-chestxray14 ]; then
  echo "NIH ChestX-ray14: download Data_Entry_2017.csv and images_*.tar.gz from" \
       "https://nihcc.app.box.com/v/ChestXray-NIHCC into $DEST/nih-chestxray14/ (images/ inside)" >&2
fi
echo "done: run  cxrsynth ingest $DEST/covid-chestxray-dataset $DEST/rsna-pneumonia-detection-challenge [$DEST/nih-chestxray14]"
