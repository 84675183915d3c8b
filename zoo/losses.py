"""The training loss, with GoogLeNet's auxiliary classifiers weighted in."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

AUX_WEIGHT = 0.3  # Szegedy et al. 2014: "their loss is added to the total loss ... with a discount weight 0.3"


def aux_loss(
    model: nn.Module, images: Tensor, targets: Tensor, criterion: Callable[[Tensor, Tensor], Tensor],
    aux_weight: float = AUX_WEIGHT,
) -> tuple[Tensor, Tensor]:
    """Return (loss, main logits) where loss = main + aux_weight x (sum of auxiliary losses).

    Models without auxiliary heads, and any model in eval mode, give the main loss alone. The call goes
    through `model(...)`, so it works on a DistributedDataParallel wrapper too.
    """
    logits, aux_logits = model(images, return_aux=True)
    loss = criterion(logits, targets)
    for aux in aux_logits:
        loss = loss + aux_weight * criterion(aux, targets)
    return loss, logits
