"""The harmful-content classifier: text -> calibrated class probabilities -> an action, saved as safe files.

Three families score a post (every one of them returns ``(n, 3)`` probabilities over hate, offensive,
neither): ``tfidf_lr`` (word 1-2 and character 2-5 gram TF-IDF, multinomial logistic regression),
``minilm_head`` (logistic regression on frozen all-MiniLM-L6-v2 embeddings) and ``minilm_finetuned``
(the encoder fine-tuned end to end with a linear head, :mod:`mlsd.systems.harmful.finetune`); a
``blend`` averages two of them with a weight chosen on validation. On top of any of them sit

* per-class calibration (matrix scaling: a multinomial logistic regression on the log-probabilities,
  fit on validation), so a served probability of 0.3 means about 30%; and
* the decision rule, thresholds chosen on validation: *remove* when P(hate) >= ``t_hate``, else
  *demote* when P(offensive) >= ``t_offensive``, else *allow*. The predicted class follows the action.

Everything is saved as JSON and ``.npy``/safetensors files (never pickles); an embedding model records
its encoder's version and refuses to load next to another one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlsd.core.errors import MlsdError
from mlsd.systems.harmful.data import CLASSES, HATE, NEITHER, OFFENSIVE

ACTIONS = ("remove", "demote", "allow")  # by predicted class: hate, offensive, neither
WORD = {"analyzer": "word", "ngram_range": (1, 2), "min_df": 2, "sublinear_tf": True, "lowercase": True}
CHAR = {"analyzer": "char_wb", "ngram_range": (2, 5), "min_df": 3, "sublinear_tf": True, "lowercase": True}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


@dataclass
class LinearHead:
    """``softmax(x @ coef.T + intercept)``: scikit-learn's multinomial logistic regression, as arrays."""

    coef: np.ndarray
    intercept: np.ndarray

    def proba(self, x: Any) -> np.ndarray:
        return softmax(np.asarray(x @ self.coef.T) + self.intercept)

    @classmethod
    def fit(cls, x: Any, y: np.ndarray, c: float, class_weight: str | None = None, seed: int = 0) -> LinearHead:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=c, max_iter=3000, class_weight=class_weight, random_state=seed).fit(x, y)
        return cls(model.coef_.astype(np.float64), model.intercept_.astype(np.float64))

    def save(self, directory: Path, name: str) -> None:
        np.save(directory / f"{name}_coef.npy", self.coef)
        np.save(directory / f"{name}_intercept.npy", self.intercept)

    @classmethod
    def load(cls, directory: Path, name: str) -> LinearHead:
        return cls(np.load(directory / f"{name}_coef.npy"), np.load(directory / f"{name}_intercept.npy"))


class Tfidf:
    """Word and character TF-IDF features (scikit-learn), saved as vocabularies plus idf weights."""

    def __init__(self, vectorizers: list[Any]) -> None:
        self.vectorizers = vectorizers

    @classmethod
    def fit(cls, texts: Sequence[str]) -> Tfidf:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return cls([TfidfVectorizer(**WORD).fit(texts), TfidfVectorizer(**CHAR).fit(texts)])

    def transform(self, texts: Sequence[str]) -> Any:
        from scipy.sparse import hstack

        return hstack([v.transform(texts) for v in self.vectorizers]).tocsr()

    def save(self, directory: Path) -> None:
        for name, vec in zip(("word", "char"), self.vectorizers, strict=True):
            vocab = {term: int(i) for term, i in vec.vocabulary_.items()}
            (directory / f"tfidf_{name}.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
            np.save(directory / f"tfidf_{name}_idf.npy", vec.idf_)

    @classmethod
    def load(cls, directory: Path) -> Tfidf:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizers = []
        for name, params in (("word", WORD), ("char", CHAR)):
            vocab = json.loads((directory / f"tfidf_{name}.json").read_text(encoding="utf-8"))
            vec = TfidfVectorizer(**{**params, "min_df": 1}, vocabulary=vocab)
            vec.idf_ = np.load(directory / f"tfidf_{name}_idf.npy")
            vectorizers.append(vec)
        return cls(vectorizers)


@dataclass
class Decision:
    """Matrix-scaling calibration and the two thresholds of the decision rule (all fit on validation)."""

    calibration: LinearHead | None = None
    t_hate: float = 0.5
    t_offensive: float = 0.5

    def calibrate(self, proba: np.ndarray) -> np.ndarray:
        if self.calibration is None:
            return proba
        return self.calibration.proba(np.log(np.clip(proba, 1e-7, 1.0)))

    def classes(self, proba: np.ndarray) -> np.ndarray:
        """The predicted class of each row of calibrated probabilities (the action's class)."""
        out = np.full(len(proba), NEITHER)
        out[proba[:, OFFENSIVE] >= self.t_offensive] = OFFENSIVE
        out[proba[:, HATE] >= self.t_hate] = HATE
        return out

    def to_dict(self) -> dict[str, float]:
        return {"t_hate": self.t_hate, "t_offensive": self.t_offensive}


@dataclass
class HarmfulClassifier:
    """A family's scorer plus its calibration and decision rule; ``classify`` is the served call."""

    family: str
    decision: Decision
    tfidf: Tfidf | None = None
    tfidf_head: LinearHead | None = None
    encoder_dir: Path | None = None  # a fine-tuned encoder's folder; None: the packaged MiniLM
    embedding_head: LinearHead | None = None
    encoder_version: str | None = None
    blend_weight: float = 1.0  # weight of the embedding side in a blend
    params: dict[str, Any] = field(default_factory=dict)
    _encoder: Any = None

    @property
    def uses_encoder(self) -> bool:
        return self.embedding_head is not None

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from mlsd.embeddings.text import MiniLMEncoder

            self._encoder = MiniLMEncoder(self.encoder_dir)
            if self.encoder_version is not None and self._encoder.version != self.encoder_version:
                raise MlsdError(f"model {self.family} was trained on encoder {self.encoder_version}, "
                                f"found {self._encoder.version}: train it again")
        return self._encoder

    def raw_proba(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """Uncalibrated probabilities; ``embeddings`` (the encoder's vectors of ``texts``) saves encoding."""
        parts = []
        if self.tfidf is not None and self.tfidf_head is not None:
            parts.append((1.0 - self.blend_weight if self.uses_encoder else 1.0,
                          self.tfidf_head.proba(self.tfidf.transform(texts))))
        if self.embedding_head is not None:
            if embeddings is None:
                embeddings = self.encoder.encode(texts, batch_size=64)
            parts.append((self.blend_weight if self.tfidf is not None else 1.0, self.embedding_head.proba(embeddings)))
        return np.asarray(sum(w * p for w, p in parts))

    def proba(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        return self.decision.calibrate(self.raw_proba(texts, embeddings))

    def classify(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities ``(n, 3)`` and the predicted class per text."""
        proba = self.proba(texts)
        return proba, self.decision.classes(proba)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"family": self.family, "decision": self.decision.to_dict(), "encoder_version": self.encoder_version,
                "blend_weight": self.blend_weight, "params": self.params, "classes": list(CLASSES),
                "tfidf": self.tfidf is not None, "embedding": self.embedding_head is not None,
                "calibrated": self.decision.calibration is not None, "finetuned": self.encoder_dir is not None}
        (directory / "classifier.json").write_text(json.dumps(meta, indent=1))
        if self.tfidf is not None and self.tfidf_head is not None:
            self.tfidf.save(directory)
            self.tfidf_head.save(directory, "tfidf_head")
        if self.embedding_head is not None:
            self.embedding_head.save(directory, "embedding_head")
        if self.decision.calibration is not None:
            self.decision.calibration.save(directory, "calibration")
        if self.encoder_dir is not None:
            self.encoder.save(directory / "encoder")

    @classmethod
    def load(cls, directory: Path) -> HarmfulClassifier:
        meta = json.loads((directory / "classifier.json").read_text())
        decision = Decision(LinearHead.load(directory, "calibration") if meta["calibrated"] else None,
                            **meta["decision"])
        model = cls(meta["family"], decision, encoder_version=meta["encoder_version"],
                    blend_weight=meta["blend_weight"], params=meta["params"],
                    encoder_dir=directory / "encoder" if meta["finetuned"] else None)
        if meta["tfidf"]:
            model.tfidf, model.tfidf_head = Tfidf.load(directory), LinearHead.load(directory, "tfidf_head")
        if meta["embedding"]:
            model.embedding_head = LinearHead.load(directory, "embedding_head")
        return model
