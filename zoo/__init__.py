"""zoo: readable PyTorch implementations of the classic convolutional networks, and a CLI to train them.

    >>> import zoo
    >>> model = zoo.create_model("resnet18", num_classes=10)
    >>> zoo.list_models("vgg*")
    >>> result = zoo.train(zoo.load_config("configs/lenet5_digits.yaml"))
    >>> zoo.lr_find(zoo.load_config("configs/lenet5_digits.yaml")).suggestion     # optimizer.lr to train with
    >>> report = zoo.evaluate_checkpoint(result.run_dir / "checkpoints" / "best.pt")   # report.trust: AUC, ECE
    >>> zoo.write_report(result.run_dir)                                  # report.html: the run on one page
    >>> predictor = zoo.load(result.run_dir / "checkpoints" / "best.pt")   # or an exported .onnx/.pt2/.safetensors
    >>> predictor.predict(["photo.jpg"], top_k=3)[0].label

The public names are imported on first use, so `import zoo` (and `zoo --help`) stays fast.

    registry.py     register_model, create_model, list_models, get_model_info
    models/         one file per family of networks, their shared layers and weight initialization
    config.py       the typed, validated training config: the only code that reads YAML
    data/           data sets (torchvision's, digits, xor), splits, transforms, the in-memory path
    loop.py         one training epoch and one evaluation pass (AMP, DDP), the loss with auxiliary heads
    metrics.py      loss, top-1/top-5, the confusion matrix, per-class precision/recall/F1
    training/       zoo train / finetune / resume: the run, its hooks, the guard, fine-tuning, optimizers
    checkpoint.py   TrainingState, the checkpoint's schema; atomic saves and safe loads
    rundir.py       run directories, the lock, atomic files (no torch)
    runtime.py      the device, seeds and random state, precision and speed settings
    distributed.py  torchrun: the process group, Job (this process's rank and device)
    evaluation.py   zoo evaluate: a checkpoint on a split, per-class figures, the confusion matrix, trust figures
    trust.py        ROC AUC, average precision (scikit-learn), ECE; trust_figures.py: their pictures (matplotlib)
    inference.py    zoo.load: any trained network (checkpoint, export, torchvision weights) as a Predictor
    predict.py      zoo predict: top-k classes of image files, folders and glob patterns, batched
    export.py       zoo export: ONNX, torch.export (.pt2) and safetensors with metadata, checked against eager
    explain.py      zoo explain: Grad-CAM, saliency and occlusion heat maps (captum), filters, feature maps
    grids.py        the pictures of explain and train.log_filters: tile grids, heat-map overlays (no captum)
    report.py       zoo report: a run's self-contained HTML page
    summary/        zoo summary: per-layer shapes, parameters, MACs and memory
    render.py       what the CLI prints: tables, Markdown, CSV, JSON, reports
    plots.py        the confusion-matrix picture, and the fonts of every picture's text
    cli.py          the zoo command (Typer); errors.py: ZooError and RunStopped
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ZooError": "zoo.errors",
    "create_model": "zoo.registry",
    "list_models": "zoo.registry",
    "get_model_info": "zoo.registry",
    "register_model": "zoo.registry",
    "init_weights": "zoo.models.weight_init",
    "Config": "zoo.config",
    "load_config": "zoo.config",
    "train": "zoo.training",
    "resume": "zoo.training",
    "lr_find": "zoo.training.lr_find",
    "evaluate_checkpoint": "zoo.evaluation",
    "load": "zoo.inference",
    "Predictor": "zoo.inference",
    "Prediction": "zoo.inference",
    "predict_files": "zoo.predict",
    "export_checkpoint": "zoo.export",
    "filter_grid": "zoo.grids",
    "compute_trust": "zoo.trust",
    "write_report": "zoo.report",
    "TrainingState": "zoo.checkpoint",
    "read_state": "zoo.checkpoint",
    "aux_loss": "zoo.loop",
    "summarize": "zoo.summary",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    try:  # a subpackage or module: zoo.models, zoo.training ...
        return importlib.import_module(f"zoo.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"zoo.{name}":
            raise
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
