"""The dataset registry and checksum-verifying file lookup."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from mlsd.core.errors import DataNotFoundError
from mlsd.core.paths import data_dir


@dataclass(frozen=True)
class DatasetFile:
    path: str
    sha256: str


@dataclass(frozen=True)
class Dataset:
    """A dataset folder under the data directory, its files and where to get them."""

    name: str
    folder: str
    files: tuple[DatasetFile, ...]
    url: str
    licence: str


# The 10 ego networks of ego-Facebook: each ego's circles, its own and its friends' profile features
# (binary, named per ego in .featnames; "anonymized feature N" names one value across all egos).
_EGO_FILES = {
    "0.circles": "927f5dfefdf3555399d6cb6af143d14ad32b3a0dfe02af742b4cba5d6d46b709",
    "0.egofeat": "19ced29b784c17df0579aa581e98ecd1c0581dc06be3d367ec4e91ba9f272521",
    "0.feat": "b907dd7360e71020a95d6e7bb0a14cdc02053acb7cbe7d4936927b71ea5b6a97",
    "0.featnames": "5afabbba309b4a57a68e88485dbc6408652b3c5695010ed0cab81856839fa7b4",
    "107.circles": "efe43fb08d9936d02bd65877ea984b5a45d8466cc0fef42a2eec3d451ed55d8b",
    "107.egofeat": "bf5a732fd33175e7ee0dea68ad03bd0b694caec610af11fcdceac3a0b1b97bc1",
    "107.feat": "bb9f271516cf3c140490b9e163a9da9f14ea5d99fb0d8cfed1024ec0986e4dd7",
    "107.featnames": "f66814da7081ab8c2f6301ad1b180d17f40c6ad576d103cc799001706ff0ec60",
    "348.circles": "85de7425218046bda73b1e1945e788fa29270ee2b307d22d92b2c683e5450921",
    "348.egofeat": "0251abeed667687a914f6b9b36d21cd73cc40248c9ab9e6152f487935731c274",
    "348.feat": "28564512ab998bcb6f737a36dfcf78242684df4ac6580967187da3710b63054e",
    "348.featnames": "18ef4bcf895dd1a8d7a443a6f3a971108fe3d0fd89328f4fd3fa846c1ad9b76c",
    "414.circles": "f767121c71c4e8c6519079bdae5ec90e42dd1a3a02bbaa63e6f28407b9588c21",
    "414.egofeat": "476a9c7ecbbe6b9455ff0949546a1cc8fe5f8e3478c0b4af8e1d66e9576aad23",
    "414.feat": "1eba61100f1564a1e69f24c0aee25ee1530269aad443e1639f0b4a96a06d2ad3",
    "414.featnames": "5536980da86d144e2a6b0150b0a88900f4419db679bec6b1b055c584fb67b687",
    "686.circles": "383c2e081622a480011f5968626ce74ac90884c98320edf7399ae4624c8c12f7",
    "686.egofeat": "0eacee85b4bd0589da40cb67b9f00f5cdd5737653f82bb0a055bcfee2f9b9c45",
    "686.feat": "03de9b3372cfba3004903e5e7c7819d19d05dc23f6d6f5557580cac8f9d70f5f",
    "686.featnames": "670794be83fd07a4169d3b25b7e964c2b750f4a0d7b9a747ed08e651af0cb49c",
    "698.circles": "9fcdad06c846c3cf1e8c0cbec81bcfbeed9ecbb0e488aca1e2735c669f1f8cea",
    "698.egofeat": "a8d227226abaef149837f7380437f98035a4a803ea4da56626a3d0ecc0db7722",
    "698.feat": "3153ae798b8ea72e37a413ad62c06a5fb92f2834b7bf54ea57efc4c1fbbb3453",
    "698.featnames": "cae0ce911813bd51cf49d3bcb5cc6f1fd7e644b4dc567cb3c2aca1b16cec69ee",
    "1684.circles": "5e7728a02dd0021d1756c6c198ee74d1edf441c2b81a4203825f296c7b128fc8",
    "1684.egofeat": "8bf36cd2b1dc55a5ed4f74fb274aa8dcab8e340ab35133bddb543ccc7957cf61",
    "1684.feat": "9a03c495a11986a369ea9b5d2b674c7138339e0aae4a3d5ad13009b14b1628a8",
    "1684.featnames": "3372d1d0c84737c28f215ad58a8d2ca9c3b9eecc0b6e7ff72cdc8370488bbef6",
    "1912.circles": "a0317ae2b1ce789aae100c9518ce1b0dd268672e042e4a4cda3432708e9bf1af",
    "1912.egofeat": "ff65c80fad06b57b8d6d212550d21db624cd9e74b1580e6f520b14508c0644b4",
    "1912.feat": "b73b6cf9766c49c8b2d2fbef13a1a5c47e594e8fb18592369f329ffb5511de3e",
    "1912.featnames": "988dd41c7835ca00d61ee6995af78a5831a3d5f0ce04b3114c1e18a480d2e5f3",
    "3437.circles": "e4d9392a29d11e3351931a2204a842f08976e7ddc46a1870f926ff3eb9a7cd99",
    "3437.egofeat": "8afd00327fe412b39beebe74d8d749d828db04c23988046971c303721eaf9e78",
    "3437.feat": "5aad021ddc7673af2dc76c61d2441fa839ca7df46e3874eeae6e4d26e9017458",
    "3437.featnames": "2c7314ae00b4ee220fd71686539d255443761126a75c4908fc705e42a2595c0d",
    "3980.circles": "b34ef3b72dc16e18b00add20332a9912cb10229bc937457dfac34afd3a1098a9",
    "3980.egofeat": "7fbc72af863c9058b7f8485487a87705cea8d088e998fbafba65c8ad97a8bd52",
    "3980.feat": "9743f0a61ba6386d3f9ee7943f9b071f1900a069d068297bd40c2616aa206687",
    "3980.featnames": "457a6a734ae4ccee86377acf62ae603ce85af58915eb05459b3bd781b44473b7",
}

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("talkingdata", "talkingdata-sample",
                (DatasetFile("train_sample.csv", "4002317e4162b3c27e4b40f604afd9f7b6f1c91e97674114279c3409a8a05b2a"),),
                "https://www.kaggle.com/c/talkingdata-adtracking-fraud-detection/data",
                "Kaggle competition data (no redistribution)"),
        Dataset("criteo", "criteo-sample",
                (DatasetFile("train.tsv", "2b0614035f6c931dc4ac2c1a1a26fa954f2b9231703f3a77bcdd53d9d9f29872"),
                 DatasetFile("dev.tsv", "7ac8a164e43a9903be3d43e640bcd464cfa0d96d7a652ec8ef8a33fe97cac6b9"),
                 DatasetFile("test.tsv", "3a7a78b694945482aede520e68300b0e2748603363072822cfbbb9f72d0dfd9a")),
                "https://ailab.criteo.com/ressources/ (Criteo Display Advertising Challenge)",
                "Criteo Labs: non-commercial, no redistribution"),
        Dataset("ipinyou", "ipinyou-sample",
                (DatasetFile("train.fm.txt", "9e7de462cfe384f3c694b8456d2bcb96013be4c1dd1fc3008bb8cfb97dc3481b"),
                 DatasetFile("test.fm.txt", "081cc6b7d8c891592bf792d6f6485a09d9b65bbe21262cc36f6fe58394f7f20a"),
                 DatasetFile("featindex.fm.txt", "378c58e56135890b1261f3d38d3fce53580a04e5d0d2ee08145de819c1bdbb3e")),
                "https://github.com/wnzhang/deep-ctr (iPinYou sample, FNN paper demo data)",
                "none stated"),
        Dataset("open_bandit", "open-bandit-small",
                (DatasetFile("random_men.csv", "ede6d08c6877f99cd3770f7d09e26c738e6aa6de4445ccccfb1356ba5d06b1eb"),
                 DatasetFile("bts_men.csv", "db6d1f7ed2d591ba521533e45286d4c1fba7fe57a8ad2e80342210335f43c527"),
                 DatasetFile("random_women.csv", "e65f3bd3beb17664fa69cc129bf7bf852a775f8ffa630506e505fc905315bb34"),
                 DatasetFile("bts_women.csv", "e5d1b49a39b608585a2f3014a3f54970430cd37a495c1b73fceb85cdf428a5b8")),
                "https://research.zozo.com/data.html (Open Bandit Dataset, small version in st-tech/zr-obp)",
                "cite Saito et al. 2020"),
        Dataset("movielens-100k", "movielens/ml-100k",
                (DatasetFile("u.data", "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
                 DatasetFile("u.user", "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
                 DatasetFile("u.item", "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701")),
                "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                "GroupLens: research use, no redistribution"),
        Dataset("movielens-1m-first-half", "movielens/ml-1m-first-half",
                (DatasetFile("ratings.dat", "1273c4edfe3c0ff9e3a0a0d55819faeb947da0ad7df3927333b51ebefbeedc3d"),
                 DatasetFile("movies.dat", "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9")),
                "https://files.grouplens.org/datasets/movielens/ml-1m.zip (ratings of users 1-2999)",
                "GroupLens: research use, no redistribution"),
        Dataset("letor-mq2008", "letor-mq2008",
                (DatasetFile("S1.txt", "cbd42504549a2388f6c0aefdb506f22074225b574c7a5df10194174c9b00e4e0"),
                 DatasetFile("S2.txt", "055ac792cb8f7d5a029090b8acbfb6c57323339d1371251bf2465ac182aa8605"),
                 DatasetFile("S3.txt", "a03fe2b6e76479de60fecdb37d560a40a4e899b0cd685553d2da31ea205af1ab"),
                 DatasetFile("S4.txt", "a239850bc6fe960ad08c2b7b0d99db90fe976dd93a15358e98036591b4e7a2ac"),
                 DatasetFile("S5.txt", "c68c52feb1ecae7f17b64c8e2fda2098302681bbd4ea5fad8c73a1d32a1cf2b2")),
                "https://www.microsoft.com/en-us/research/project/letor-learning-rank-information-retrieval/ "
                "(LETOR 4.0, MQ2008 supervised ranking)",
                "Microsoft Research LETOR: research use"),
        Dataset("diginetica-sample", "diginetica-sample",
                (DatasetFile("sample_train-item-views.csv",
                             "98da96e05c87ef12b739e4bfd9bc7b4864106ee77371f1db9eb4413e3f78d37e"),),
                "https://github.com/CRIPAC-DIG/SR-GNN (datasets/sample_train-item-views.csv; CIKM Cup 2016)",
                "none stated"),
        Dataset("snap-ego-facebook", "snap-ego-facebook",
                (DatasetFile("facebook_combined.txt",
                             "f41c026ed8af3cc3359f1ca5573d0605fb09ae0eefa34544b820fd8c6e2ef296"),),
                "https://snap.stanford.edu/data/ego-Facebook.html", "SNAP: public research dataset"),
        Dataset("snap-ego-facebook-circles", "snap-ego-facebook",
                tuple(DatasetFile(name, sha) for name, sha in _EGO_FILES.items()),
                "https://snap.stanford.edu/data/ego-Facebook.html (facebook.tar.gz)", "SNAP: public research dataset"),
        Dataset("snap-collegemsg", "snap-collegemsg",
                (DatasetFile("CollegeMsg.txt", "e00ba2415373dee52c00616065bcceaa4750e78de60d1855c76470600f10740f"),),
                "https://snap.stanford.edu/data/CollegeMsg.html", "SNAP: public research dataset"),
        Dataset("davidson-hate-speech", "davidson-hate-speech",
                (DatasetFile("labeled_data.csv", "fcb8bc7c68120ae4af04a5b9acd58585513ede11e1548ebf36a5c2040b6f6281"),),
                "https://github.com/t-davidson/hate-speech-and-offensive-language (data/labeled_data.csv)",
                "MIT (repository licence); cite Davidson et al., ICWSM 2017"),
        Dataset("fashion-products", "fashion-products",
                (DatasetFile("styles.csv", "b5451284ea74ad2b93cc7bbfbfa8334457661a3cb898fc590a1de80f0a1a18de"),
                 DatasetFile("styles_text.csv", "4245371ef7cdf8b79a2ed0fffccf77654eb27af70d625403e23fb6ef57e90840")),
                "https://www.kaggle.com/datasets/paramaggarwal/fashion-product-images-dataset (224x224 subset)",
                "none stated in the source repositories"),
        Dataset("mobilenet-v1-embedding", "models",
                (DatasetFile("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
                             "f409ef4f73fcbb9667841965623c5c8524aac33d41b9bf5f3667161fb4a76319"),),
                "https://github.com/google-coral/test_data (mobilenet_v1_1.0_224_quant_embedding_extractor.tflite)",
                "Apache-2.0"),
    )
}

_VERIFIED: set[tuple[str, int, float]] = set()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(name: str, root: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Paths of a dataset's files after checking they exist and match their checksums.

    Raises :class:`DataNotFoundError` naming the missing or altered files and the official source.
    """
    dataset = DATASETS[name]
    base = data_dir(root)
    if base is None:
        raise DataNotFoundError(f"no data directory: pass --data DIR or set MLSD_DATA_DIR "
                                f"(dataset {name!r} is expected in DIR/{dataset.folder}; get it from {dataset.url})")
    found, missing, altered = {}, [], []
    for item in dataset.files:
        path = base / dataset.folder / item.path
        if not path.exists():
            missing.append(str(path))
            continue
        stat = path.stat()
        stamp = (str(path), stat.st_size, stat.st_mtime)
        if stamp not in _VERIFIED:
            if _sha256(path) != item.sha256:
                altered.append(str(path))
                continue
            _VERIFIED.add(stamp)
        found[item.path] = path
    if missing or altered:
        problems = ([f"missing: {', '.join(missing)}"] if missing else []) + (
            [f"checksum mismatch: {', '.join(altered)}"] if altered else [])
        raise DataNotFoundError(f"dataset {name!r}: {'; '.join(problems)}. Official source: {dataset.url}")
    return found
