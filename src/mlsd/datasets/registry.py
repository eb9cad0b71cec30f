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
