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
    >>> zoo.load(autoencoder_run).predict(["photo.jpg"])[0].verdict       # an autoencoder's: "normal" or "abnormal"
    >>> swept = zoo.sweep("configs/lessons/optimizers.yaml", workers=2)     # every variant x seed: swept.results
    >>> zoo.compare([swept.folder]).pairs[0].pooled.p_value                 # McNemar's test, image by image
    >>> zoo.stylize("photo.jpg", "starry.jpg", "out.png").losses[-1].total    # style transfer on VGG-19

The public names are imported on first use, so `import zoo` (and `zoo --help`) stays fast.

The package map, one layer a line group, from the top down: a module imports only from the groups below it
(pyproject.toml's import-linter contract checks it; tests/test_layout.py checks this map names every module).

    cli.py          the zoo command (Typer): options in, one library call, text out; known errors -> exit code 2
    experiments/    sweep.py (zoo sweep: an Optuna study of runs), over compare.py's page; compare.py's tests
    present/        compare.py (zoo compare's text and page), text.py (what the commands print) and report.py
                    (zoo report's HTML page): the renderers
    inference/      zoo.load and Predictor (load.py; an autoencoder's: AutoencoderPredictor), zoo predict, zoo export,
                    zoo explain, zoo stylize
    training/       zoo train / finetune / resume / lr-find: the run, its set-up by stage, hooks, restarts
    evaluation/     zoo evaluate (evaluate.py), and test_scores.npz, the test split's scores a run keeps
    loop.py         one training epoch and one evaluation pass (AMP, DDP), the loss with auxiliary heads
    tasks/          what differs per task (single-label, multi-label): loss, targets, figures, decision rule
    data/           data sets (torchvision's, digits, xor, your sentences), splits, transforms, the in-memory path
    summary/        zoo summary and zoo list: per-layer shapes, parameters, MACs and memory
    checkpoint.py   TrainingState, the checkpoint's one schema; atomic saves and safe loads
    config.py       the typed, validated training config: the only code that reads YAML
    datasets.py     every fact about each data set, in one table (SPECS): data.name's choices
    present/        figures.py and grids.py: every picture (Pillow, matplotlib), from numbers and metrics' records
    models/         one file per family of networks, their shared layers, weight initialization, the registry
    metrics/        loss, top-1/top-5, the confusion matrix, per-class figures; trust: ROC AUC, AP, ECE;
                    multi-label: mAP, F1, exact match, Hamming loss, thresholds
    distributed.py  torchrun: the process group, Job (this process's rank and device), rank 0 and unwrap
    runtime.py      the device, seeds and random state, precision and speed settings
    rundir.py       run directories, the lock, atomic files (no torch)
    present/        console.py: printing to a console that may be gone
    errors.py       ZooError and the other errors users see, with their exit codes
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ZooError": "zoo.errors",
    "create_model": "zoo.models.registry",
    "list_models": "zoo.models.registry",
    "get_model_info": "zoo.models.registry",
    "register_model": "zoo.models.registry",
    "init_weights": "zoo.models.weight_init",
    "Config": "zoo.config",
    "load_config": "zoo.config",
    "train": "zoo.training",
    "resume": "zoo.training",
    "lr_find": "zoo.training.lr_find",
    "evaluate_checkpoint": "zoo.evaluation.evaluate",
    "load": "zoo.inference.load",
    "Predictor": "zoo.inference.load",
    "Prediction": "zoo.inference.load",
    "AutoencoderPredictor": "zoo.inference.load",
    "AnomalyScore": "zoo.inference.load",
    "predict_files": "zoo.inference.predict",
    "export_checkpoint": "zoo.inference.export",
    "stylize": "zoo.inference.stylize",
    "filter_grid": "zoo.present.grids",
    "compute_trust": "zoo.metrics.trust",
    "write_report": "zoo.present.report",
    "sweep": "zoo.experiments.sweep",
    "compare": "zoo.experiments.compare",
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
