"""Training: encoders, click models, negative downsampling and calibration, metrics."""

from mlsd.evaluation.classification import evaluate
from mlsd.training.calibration import IsotonicCalibrator, PlattCalibrator, downsample_negatives, recalibrate
from mlsd.training.encoding import EncodedBatch, FeatureEncoder, hash_bucket
from mlsd.training.engine import EmbeddedEngine, FitEngine
from mlsd.training.pipeline import ClickPipeline, TimeSplit, TrainingResult, train_click_model

__all__ = ["ClickPipeline", "EmbeddedEngine", "EncodedBatch", "FeatureEncoder", "FitEngine", "IsotonicCalibrator",
           "PlattCalibrator", "TimeSplit", "TrainingResult", "downsample_negatives", "evaluate", "hash_bucket",
           "recalibrate", "train_click_model"]
