"""Data sets and loaders: torchvision's real loaders, plus digits and xor held in memory as tensors.

    splits = build_datasets(config.data, in_channels=1, input_size=32, seed=config.train.seed)
    train, val, test = build_loaders(splits, config.data, seed=config.train.seed)

Every split yields (float tensor C x H x W, normalized; int label); xor yields 2 features instead of an image.
Images are fitted to the model: gray becomes RGB by repetition and RGB becomes gray by ITU-R 601 luma (as
torchvision's Grayscale does); a side at most 4 pixels short is padded with black (MNIST 28 -> LeNet-5's 32,
as LeCun et al. 1998 did), any other side is resized. Augmentation touches training data only: a validation
split carved from the training set is a second view, with the eval transforms, over the same files.

    transforms.py  statistics, fitting to the model, augmentation, normalization
    splits.py      DataSplits, the views over a base data set, seeded stratified hold-out
    sets.py        each data set, and build_datasets
    memory.py      the in-memory path: tensors on the device, augmented and normalized in batches
    samplers.py    the training order (resumable mid-epoch) and the exact eval shards under DDP
    loaders.py     build_loaders (either path), set_epoch, resume_at and the loaders' random state
"""

from zoo.data.loaders import (build_loaders, default_workers, load_loader_state, loader_state, resume_at, set_epoch,
                              uses_memory)
from zoo.data.memory import MemoryLoader
from zoo.data.samplers import ShardSampler, TrainSampler
from zoo.data.sets import build_datasets
from zoo.data.splits import DataSplits, TensorSet, View

__all__ = ["DataSplits", "MemoryLoader", "ShardSampler", "TensorSet", "TrainSampler", "View", "build_datasets",
           "build_loaders", "default_workers", "load_loader_state", "loader_state", "resume_at", "set_epoch", "uses_memory"]
