"""What training and evaluating a net of a space takes: the device, cached frozen-prefix
features, the one training step, the evaluator and the plots. Imports `archft.core`,
`archft.data`, `archft.models` and `archft.nas`."""

from archft.engine.device import autocast, resolve_device, to_device
from archft.engine.evaluator import SCORES, ScopedEvaluator
from archft.engine.features import (
    FeatureCacheConfig,
    FrozenPrefix,
    TrainBatches,
    train_batches,
)
from archft.engine.train import (
    Stepper,
    fresh_bn_statistics,
    recalibrated_bn,
    seed_step,
    train_step,
    transforms,
)

__all__ = ["SCORES", "FeatureCacheConfig", "FrozenPrefix", "ScopedEvaluator", "Stepper",
           "TrainBatches", "autocast", "fresh_bn_statistics", "recalibrated_bn",
           "resolve_device", "seed_step", "to_device", "train_batches", "train_step",
           "transforms"]
