"""Data sets and loaders: torchvision's real loaders, a manifest of your images or sentences, plus digits and xor held
in memory.

    splits = build_datasets(config.data, in_channels=1, input_size=32, seed=config.train.seed,
                            multilabel=config.task == "multilabel")
    train, val, test = build_loaders(splits, config.data, seed=config.train.seed)

Every split yields (float tensor C x H x W, normalized; int label); xor yields 2 features instead of an image; a
multilabel manifest (splits.multilabel) yields a float32 multi-hot vector of num_classes as the label; text yields a
sentence's token ids (int64, its own length; a batch is N x L, padded: splits.vocabulary says how).
Images are fitted to the model: gray becomes RGB by repetition and RGB becomes gray by ITU-R 601 luma (as
torchvision's Grayscale does); a side at most 4 pixels short is padded with black (MNIST 28 -> LeNet-5's 32,
as LeCun et al. 1998 did), any other side is resized. Augmentation touches training data only: a validation
split carved from the training set is a second view, with the eval transforms, over the same files.

    transforms.py  fitting to the model, augmentation, normalization
    preprocess.py  Preprocessing: a picture to a trained network's input, exactly as evaluation prepares it
    splits.py      DataSplits, the views over a base data set, seeded stratified hold-out (by class, or by label set
                   for multilabel; a split left empty: one line), the run's first line (describe); MemorySource,
                   the same splits as tensors for the in-memory path
    folders.py     ImageFolder layouts: split folders by their common names; hidden and system entries skipped
    images.py      image files read as a viewer shows them (open_image); unreadable ones: one warning, or one line
    manifest.py    a CSV or JSON-lines file of path, label(s) and split: rows checked (one line naming the line),
                   read as ImageFolder's samples are, single-label or multi-hot
    sets.py        each data set, build_datasets, and build_folder (a new folder, every image, to evaluate)
    text.py        sentences (data.name text): a manifest of text and label, the tokenizer, the training split's
                   vocabulary, padded batches, and pretrained word vectors (word2vec's or GloVe's text files)
    memory.py      the in-memory path: tensors on the device, augmented and normalized in batches
    samplers.py    the training order (resumable mid-epoch) and the exact eval shards under DDP
    loaders.py     build_loaders (either path), set_epoch, resume_at and the loaders' random state

The names below are imported on first use, so `import zoo.datasets` (and so zoo.config) needs no torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build_loaders": "zoo.data.loaders",
    "default_workers": "zoo.data.loaders",
    "load_loader_state": "zoo.data.loaders",
    "loader_state": "zoo.data.loaders",
    "resume_at": "zoo.data.loaders",
    "set_epoch": "zoo.data.loaders",
    "uses_memory": "zoo.data.loaders",
    "MemoryLoader": "zoo.data.memory",
    "ShardSampler": "zoo.data.samplers",
    "TrainSampler": "zoo.data.samplers",
    "build_datasets": "zoo.data.sets",
    "build_folder": "zoo.data.sets",
    "DataSplits": "zoo.data.splits",
    "TensorSet": "zoo.data.splits",
    "View": "zoo.data.splits",
    "SPLITS": "zoo.data.splits",
    "Preprocessing": "zoo.data.preprocess",
    "SPECS": "zoo.datasets",
    "DatasetSpec": "zoo.datasets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'zoo.data' has no attribute {name!r}")
