"""Class imbalance in the training split: its class counts, the loss weights of loss.class_weights and the line
saying which class got which, the note `zoo train` prints when the largest class has IMBALANCE times the
smallest's images, and the note on class names that are numbers but not in numeric order."""

from __future__ import annotations

import difflib
import re

import torch
from torch import Tensor

from zoo.config import Config
from zoo.errors import ZooError
from zoo.tasks import Classification, Task

IMBALANCE = 5  # largest / smallest class count from which the run notes the imbalance
LISTED = 10  # classes named one by one in a line; more are shortened
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def class_weights(config: Config, counts: Tensor, classes: list[str], task: Task | None = None,
                  images: int | None = None) -> Tensor | None:
    """loss.class_weights as a float tensor, one weight per class, or None (unweighted). auto is the task's
    (zoo.tasks): scikit-learn's 'balanced' (compute_class_weight), N / (K x n_c), so that the weights average 1
    over the training images; for multi-label, each class's negatives / positives (BCEWithLogitsLoss's
    pos_weight). A mapping gives each class's weight by name. Raises ZooError for a list of another length than
    the classes, a mapping that does not name every class or names one the data lacks, or auto with a class
    without images (multi-label: or on every image, which would weigh its positives 0). `images`: the training
    images behind `counts` (None: their sum, true with one class per image)."""
    given = config.loss.class_weights
    if given is None:
        return None
    if given == "auto":
        task = task or Classification()
        if (counts == 0).any():
            empty = classes[int((counts == 0).nonzero()[0])]
            raise ZooError(f"loss.class_weights auto: class {empty!r} has no training images, so no weight; "
                           "give the weights by class name, or add images of it")
        weights = task.balanced_weights(counts, int(counts.sum()) if images is None else images)
        if (weights == 0).any():
            full = classes[int((weights == 0).nonzero()[0])]
            raise ZooError(f"loss.class_weights auto: class {full!r} is on every training image, so its positives "
                           "would weigh 0; give the weights by class name")
        return weights
    if isinstance(given, dict):
        check_names(given, classes)
        return torch.tensor([given[name] for name in classes], dtype=torch.float64)
    if len(given) != len(counts):
        listed = f"{', '.join(classes[:5])}{' ...' if len(classes) > 5 else ''}"
        raise ZooError(f"loss.class_weights has {len(given)} weights but the data has {len(counts)} classes "
                       f"({listed}); give one per class (in that order, or by name: {{name: weight}}), or auto")
    return torch.tensor(given, dtype=torch.float64)


def check_names(given: dict[str, float], classes: list[str]) -> None:
    """A mapping of loss.class_weights must name each class once, and nothing else: one line naming the unknown
    names (with the nearest class name) and the missing classes."""
    unknown = [name for name in given if name not in classes]
    missing = [name for name in classes if name not in given]
    if not unknown and not missing:
        return
    problems = []
    if unknown:
        hints = []
        for name in unknown:
            near = difflib.get_close_matches(name, [c for c in classes if c not in given], n=1, cutoff=0.5)
            hints.append(f"{name!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        problems.append(f"no class named {', '.join(hints)}")
    if missing:
        problems.append(f"no weight for {shortened([repr(name) for name in missing], 5)}")
    raise ZooError(f"loss.class_weights: {'; '.join(problems)}; the classes are {shortened(classes, LISTED)}: give "
                   "one weight per class name")


def weights_line(config: Config, weights: Tensor | None, classes: list[str]) -> str | None:
    """The line a run starts with when the loss is weighted: which weight went to which class (shortened past
    LISTED classes, with the range of the rest); None without loss.class_weights."""
    if weights is None:
        return None
    pairs = [f"{name}: {weight:.3g}" for name, weight in zip(classes, weights.tolist())]
    if len(pairs) > LISTED:
        rest = weights[LISTED - 2:-1]
        pairs = [*pairs[:LISTED - 2], f"... ({len(rest)} more, {float(rest.min()):.3g} to {float(rest.max()):.3g})",
                 pairs[-1]]
    given = config.loss.class_weights
    how = "auto" if given == "auto" else "by name" if isinstance(given, dict) else "in class order"
    what = ", each class's positive weight" if config.task == "multilabel" else ""  # BCEWithLogitsLoss's pos_weight
    return f"loss.class_weights ({how}{what}): {{{', '.join(pairs)}}}"


def numeric_order_note(config: Config, classes: list[str]) -> str | None:
    """A note when every class name is a number but the classes are not in numeric order (ImageFolder sorts the
    folders 1, 2, 10 as text: 1, 10, 2), so that class indices and lists by class follow an order nobody meant;
    with loss.class_weights as a list, how to give them by name."""
    if len(classes) < 2 or not all(_NUMBER.fullmatch(name) for name in classes):
        return None
    numeric = sorted(classes, key=float)
    if numeric == classes:
        return None
    text = (f"note: the class names are numbers, ordered as text as ImageFolder orders folders "
            f"({shortened(classes, LISTED)}), not as numbers: class indices and data.classes follow that order")
    if not isinstance(config.loss.class_weights, tuple):
        return text
    example = ", ".join(f"{name}: ..." for name in numeric[:3]) + (", ..." if len(classes) > 3 else "")
    return f"{text}, and so does the list of loss.class_weights; give the weights by name ({{{example}}})"


def imbalance_note(config: Config, counts: Tensor, classes: list[str]) -> str | None:
    """One line naming the training split's largest and smallest classes when the first has IMBALANCE times the
    second's images: the remedy in use (data.sampler balanced or loss.class_weights), or the two to consider;
    None otherwise."""
    if len(counts) < 2:
        return None
    largest, smallest = int(counts.argmax()), int(counts.argmin())
    if counts[largest] < IMBALANCE * max(int(counts[smallest]), 1):
        return None
    listed = ", ".join(f"{name} {int(count):,}" for name, count in zip(classes, counts.tolist()))
    if len(classes) > LISTED:
        listed = f"{classes[largest]} {int(counts[largest]):,} ... {classes[smallest]} {int(counts[smallest]):,}"
    weights = config.loss.class_weights
    sets = config.task == "multilabel"  # positives per class; the balanced sampler draws by one class per image
    if config.data.sampler == "balanced":
        remedy = "data.sampler balanced draws each class equally often"
    elif weights == "auto":
        remedy = ("loss.class_weights auto weighs each class's positives by its negatives / positives" if sets else
                  "loss.class_weights auto weighs each class's loss by N / (K x its images)")
    elif weights is not None:
        remedy = "loss.class_weights weighs the loss as given"
    elif sets:
        remedy = "consider --set loss.class_weights=auto (each class's positives weighed by its negatives / positives)"
    else:
        remedy = "consider --set loss.class_weights=auto or --set data.sampler=balanced (one of them: both would " \
                 "correct it twice)"
    return (f"note: the training split is imbalanced ({listed} images; "
            f"{counts[largest] / max(counts[smallest], 1):.0f}x between the largest and smallest class); {remedy}")


def shortened(names: list[str], shown: int) -> str:
    """Up to `shown` names, comma-separated; more: the first shown - 1, '...', and the last."""
    if len(names) <= shown:
        return ", ".join(names)
    return ", ".join([*names[:shown - 1], "...", names[-1]])
