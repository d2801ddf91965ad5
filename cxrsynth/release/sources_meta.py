"""What a release must say about each upstream source: name, version, licence, citation, address."""

from __future__ import annotations

SOURCES = {
    "covid-collection": {
        "name": "COVID-19 Image Data Collection",
        "hub_name": "ieee8023/covid-chestxray-dataset",
        "url": "https://github.com/ieee8023/covid-chestxray-dataset",
        "licence": "per image (column `license`: mostly CC BY-NC-SA 4.0, some CC BY-NC-ND, Apache 2.0, CC BY, blank); metadata CC BY-NC-SA 4.0",
        "citation": "Cohen JP, Morrison P, Dao L, Roth K, Duong TQ, Ghassemi M. COVID-19 Image Data Collection: "
                    "Prospective Predictions Are the Future. MELBA 2020.",
        "bibtex": "@article{cohen2020covidProspective,\n  title={COVID-19 Image Data Collection: Prospective Predictions Are the Future},\n"
                  "  author={Cohen, Joseph Paul and Morrison, Paul and Dao, Lan and Roth, Karsten and Duong, Tim Q and Ghassemi, Marzyeh},\n"
                  "  journal={Journal of Machine Learning for Biomedical Imaging (MELBA)},\n  year={2020}\n}",
    },
    "nih": {
        "name": "NIH ChestX-ray14",
        "hub_name": "NIH ChestX-ray14",
        "url": "https://nihcc.app.box.com/v/ChestXray-NIHCC",
        "licence": "CC0 1.0 / no restrictions (NIH Clinical Center); acknowledge the NIH Clinical Center",
        "citation": "Wang X, Peng Y, Lu L, Lu Z, Bagheri M, Summers RM. ChestX-ray8: Hospital-scale Chest X-ray "
                    "Database and Benchmarks. CVPR 2017.",
        "bibtex": "@inproceedings{wang2017chestxray,\n  title={ChestX-ray8: Hospital-scale Chest X-ray Database and Benchmarks on Weakly-Supervised Classification and Localization of Common Thorax Diseases},\n"
                  "  author={Wang, Xiaosong and Peng, Yifan and Lu, Le and Lu, Zhiyong and Bagheri, Mohammadhadi and Summers, Ronald M},\n"
                  "  booktitle={CVPR},\n  year={2017}\n}",
    },
    "rsna": {
        "name": "RSNA Pneumonia Detection Challenge (2018)",
        "hub_name": "RSNA Pneumonia Detection Challenge",
        "url": "https://www.kaggle.com/c/rsna-pneumonia-detection-challenge",
        "licence": "RSNA / Kaggle competition terms (non-commercial research); pixels from NIH ChestX-ray14 (CC0)",
        "citation": "Shih G, Wu CC, Halabi SS, et al. Augmenting the National Institutes of Health Chest Radiograph "
                    "Dataset with Expert Annotations of Possible Pneumonia. Radiology: AI 2019.",
        "bibtex": "@article{shih2019rsna,\n  title={Augmenting the National Institutes of Health Chest Radiograph Dataset with Expert Annotations of Possible Pneumonia},\n"
                  "  author={Shih, George and Wu, Carol C and Halabi, Safwan S and others},\n  journal={Radiology: Artificial Intelligence},\n  year={2019}\n}",
    },
    "imagefolder": {
        "name": "user image folder", "hub_name": "user image folder", "url": "",
        "licence": "as given by the user (ingest imagefolder.license)", "citation": "", "bibtex": "",
    },
}

RELEASE_LICENSE = "cc-by-nc-sa-4.0"
RELEASE_LICENSE_WHY = (
    "The translators learnt from COVID-19 collection images, most of them CC BY-NC-SA (non-commercial, "
    "share-alike), and translate RSNA images released for non-commercial research; CC BY-NC-SA 4.0 is the "
    "least restrictive licence those terms allow. Some COVID-19 images are CC BY-NC-ND; whether training on "
    "them makes a derivative is unsettled: exclude them at ingest if that matters to you."
)

PAPER_BIBTEX = (
    "@article{zunair2021synthesis,\n  title={Synthesis of COVID-19 chest X-rays using unpaired image-to-image translation},\n"
    "  author={Zunair, Hasib and Hamza, A Ben},\n  journal={Social Network Analysis and Mining},\n  volume={11},\n"
    "  number={1},\n  pages={23},\n  year={2021}\n}"
)
