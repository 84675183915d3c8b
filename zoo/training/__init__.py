"""Training: `zoo train`, `zoo finetune` and `zoo train --resume`, from a validated Config to a run directory.

    result = zoo.training.train(zoo.load_config("configs/lenet5_digits.yaml"))
    result = zoo.training.resume("runs/lenet5_digits/<time>")    # continue a stopped run exactly

The run (run.py) reads top to bottom: set up -> for each epoch: train, validate, log, checkpoint, stop? ->
test -> metrics.json. The steps themselves are zoo.loop's; the checkpoint's schema is zoo.checkpoint's.

    run.py          train and resume: the run, one screen long
    setup.py        Parts: the data, the model and its weights, freezing, the optimizer, schedule and loss
    hooks.py        around the steps: the log, checkpoints, early stopping, the per-step hook
    guard.py        what stops a run between steps: SIGINT/SIGTERM, a non-finite loss
    resume.py       finding a run's checkpoint, the config it resumes with, and where it goes on
    finetune.py     weights sources (zoo checkpoints, state_dicts, torchvision's), transplanting, freezing
    optim.py        the optimizer and the learning-rate schedule from the config
    imbalance.py    the training split's class counts, loss.class_weights, the note on an imbalanced split
    ema.py          train.ema: the average of the weights, validated beside them each epoch
    history.py      history.csv: a row of figures per epoch, as it ends
    lr_find.py      zoo lr-find: the learning-rate range test, leaving nothing behind
    tensorboard.py  what TensorBoard shows: scalars, gradient norms, histograms, confusion matrices, hparams
"""

from zoo.training.run import RunResult, resume, train

__all__ = ["RunResult", "resume", "train"]
