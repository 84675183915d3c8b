"""Training: `zoo train`, `zoo finetune` and `zoo train --resume`, from a validated Config to a run directory.

    result = zoo.training.train(zoo.load_config("configs/lenet5_digits.yaml"))
    result = zoo.training.resume("runs/lenet5_digits/<time>")    # continue a stopped run exactly

The run (run.py) reads top to bottom: set up (setup.assemble, stage by stage) -> in its directory
(directory.RunDirectory), for each epoch: train, validate, log, checkpoint, stop? -> decide thresholds,
calibrate -> test -> metrics.json.
`_run` and `_epochs` fit on one screen. The steps themselves are zoo.loop's; the checkpoint's schema is
zoo.checkpoint's.

    run.py          train, finetune and resume: the run and its epochs
    setup.py        Parts, built by assemble's stages: the data, the model and its checks, the threads, the
                    weights and freezing, the optimizer, schedule, loss and EMA
    directory.py    RunDirectory: the run directory's life (stale, create, lock, launch.json, discard, lost peer)
    hooks.py        around the steps: Run (what the epochs share), checkpoints, early stopping, the step hook
    log.py          RunLog: the console and, on rank 0, TensorBoard and history.csv
    guard.py        what stops a run between steps: SIGINT/SIGTERM, a non-finite loss; out-of-memory in one line
    resume.py       finding a run's checkpoint, the config it resumes with, and where it goes on
    restarts.py     the same command line again (train.run_id, torchrun's restarts): which run it continues
    finetune.py     weights sources (zoo checkpoints, state_dicts, torchvision's), transplanting, freezing
    optim.py        the optimizer and the learning-rate schedule from the config
    imbalance.py    the training split's class counts, loss.class_weights, the note on an imbalanced split
    ema.py          train.ema: the average of the weights, validated beside them each epoch
    history.py      history.csv: a row of figures per epoch, as it ends
    lr_find.py      zoo lr-find: the learning-rate range test, leaving nothing behind but its picture
    tensorboard.py  what TensorBoard shows: scalars, gradient norms, histograms, confusion matrices, hparams
    calibrate.py    a classifier's temperature, prediction sets and unfamiliar score: at a run's end, zoo calibrate
"""

from zoo.training.run import RunResult, finetune, resume, train

__all__ = ["RunResult", "finetune", "resume", "train"]
