"""Which explanation marks the digit? Heat maps of LeNet-5 on the main job's test digits, scored by heat_on_ink.

For each test digit (configs/lenet5_digits.yaml's test split, 359 pictures), the heat map of its top-1 class by
each method, and the share of the heat on the ink (pixels at half the brightest value or more) divided by the
ink's share of the picture: 1 is no preference, above 1 the heat favours the strokes, the most possible is 1 / the
ink's share (about 3.3 here). It prints the mean and median over the digits per method and layer, and which method
zoo explain uses by default for lenet5 (zoo.models.registry's ModelInfo.explain).

    python scripts/explain_ink.py                                  # trains the main job first (about 30 s)
    python scripts/explain_ink.py --seed 1                         # the main job with train.seed=1
    python scripts/explain_ink.py --checkpoint runs/lenet5_digits/<time>/checkpoints/best.pt --limit 100

Methods: zoo explain's own (Grad-CAM at each of LeNet's stages, saliency, occlusion by patches of the mean
colour), then variants tried for this issue, computed here: Grad-CAM negated and in absolute value, HiResCAM (Draelos
and Carin 2020, arXiv:2011.08891: the gradient times the maps, position by position, not averaged), occlusion by
black patches, integrated gradients (Sundararajan et al. 2017, arXiv:1703.01365) from a black and from a mean-colour
picture. A black baseline gives no heat where the picture is black, so those methods favour the ink by
construction; the mean colour does not. Nothing is written; a trained run goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import zoo  # noqa: E402
from zoo.config import load_config  # noqa: E402
from zoo.data import build_datasets  # noqa: E402
from zoo.inference.explain import default_method, find_stages, heat_on_ink, heatmaps, seen  # noqa: E402

CONFIG = ROOT / "configs" / "lenet5_digits.yaml"
CHUNK = 64  # pictures per attribution pass


def test_digits(checkpoint: Path, limit: int | None) -> tuple[zoo.Predictor, Tensor, Tensor, list[int]]:
    """(predictor, the test split's pictures preprocessed N x 1 x 32 x 32, as seen N x 32 x 32 x 3, top-1s)."""
    predictor = zoo.load(checkpoint, device="cpu")
    config = predictor.config
    splits = build_datasets(config.data, in_channels=1, input_size=32, seed=config.train.seed)
    count = len(splits.test) if limit is None else min(limit, len(splits.test))
    batch = torch.stack([splits.test[index][0] for index in range(count)])
    pictures = torch.stack([seen(predictor, picture) for picture in batch])
    with torch.no_grad():
        targets = predictor.model(batch).argmax(dim=1).tolist()
    return predictor, batch, pictures, targets


def layer_maps(model: nn.Module, batch: Tensor, targets: list[int], layer: str, kind: str) -> Tensor:
    """Grad-CAM's relatives at `layer`, by hand: 'negated' -(sum_k alpha_k A_k), 'absolute' |sum_k alpha_k A_k|,
    'hirescam' sum_k dy/dA_k * A_k; upsampled bilinearly to the input, positive part."""
    kept = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda module, inputs, output: kept.update(maps=output))
    logits = model(batch)
    handle.remove()
    gradients, = torch.autograd.grad(logits[torch.arange(len(batch)), torch.tensor(targets)].sum(), kept["maps"])
    maps = kept["maps"].detach()
    if kind == "hirescam":
        cam = (gradients * maps).sum(dim=1, keepdim=True)
    else:
        cam = (gradients.mean(dim=(2, 3), keepdim=True) * maps).sum(dim=1, keepdim=True)
        cam = -cam if kind == "negated" else cam.abs()
    cam = nn.functional.interpolate(cam, size=tuple(batch.shape[-2:]), mode="bilinear")[:, 0]
    return cam.clamp_min(0)


def captum_maps(model: nn.Module, batch: Tensor, targets: list[int], kind: str, black: float) -> Tensor:
    """Occlusion by black patches (zoo's patch: an eighth of the side, half a patch apart) and integrated gradients
    from a black or a mean-colour picture (0 after normalization), positive part."""
    from captum.attr import IntegratedGradients, Occlusion

    if kind == "occlusion, black patches":
        side = max(2, -(-max(batch.shape[-2:]) // 8))
        maps = Occlusion(model).attribute(batch, sliding_window_shapes=(1, side, side), baselines=black,
                                          strides=(1, side // 2, side // 2), target=targets, perturbations_per_eval=16)
    else:
        baseline = black if "black" in kind else 0.0
        maps = IntegratedGradients(model).attribute(batch, baselines=baseline, target=targets, n_steps=32)
    return maps.sum(dim=1).detach().clamp_min(0)


def score(make: Callable[[Tensor, list[int]], Tensor], batch: Tensor, pictures: Tensor,
          targets: list[int]) -> tuple[float, float, int]:
    """(mean, median of heat_on_ink over the pictures whose map is not empty, empty maps)."""
    maps = torch.cat([make(batch[start:start + CHUNK], targets[start:start + CHUNK])
                      for start in range(0, len(batch), CHUNK)])
    ratios = heat_on_ink(maps, pictures)
    kept = ratios[~ratios.isnan()]
    return kept.mean().item(), kept.median().item(), int(ratios.isnan().sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="a LeNet-5 digits best.pt [default: train the main job]")
    parser.add_argument("--limit", type=int, help="the first N test digits [default: all]")
    parser.add_argument("--seed", type=int, default=0, help="train.seed of the run trained [default: 0, the config's]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.checkpoint
        if checkpoint is None:
            from zoo.training import train

            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                result = train(load_config(CONFIG, [f"train.output_dir={folder}", f"train.seed={args.seed}"]),
                               quiet=True)
            checkpoint = result.run_dir / "checkpoints" / "best.pt"
        predictor, batch, pictures, targets = test_digits(checkpoint, args.limit)
    model = predictor.model.eval()
    ink = (pictures.float().mean(dim=-1) >= 0.5 * 255).float().mean().item()
    black = float((0 - predictor.preprocessing.mean[0]) / predictor.preprocessing.std[0])
    name = predictor.config.model.name
    print(f"{checkpoint}: {name}, {len(batch)} test digits; ink is {ink:.1%} of a picture on average "
          f"(the highest possible figure is about {1 / ink:.1f}); {name}'s default: {default_method(name)}")
    print(f"{'method':<34} {'layer':<11} {'mean':>5} {'median':>6} {'empty':>5}")
    stages = [stage.name for stage in find_stages(model, batch[:1]).stages]
    rows: list[tuple[str, str, Callable[[Tensor, list[int]], Tensor]]] = []
    for layer in stages:
        rows.append(("gradcam (zoo)", layer, lambda b, t, layer=layer: heatmaps(model, b, t, "gradcam", layer)))
    rows += [("saliency (zoo)", "", lambda b, t: heatmaps(model, b, t, "saliency")),
             ("occlusion, mean-colour patches (zoo)", "", lambda b, t: heatmaps(model, b, t, "occlusion"))]
    for kind in ("negated", "absolute", "hirescam"):
        for layer in stages:
            label = "hirescam" if kind == "hirescam" else f"gradcam {kind}"
            rows.append((label, layer, lambda b, t, layer=layer, kind=kind: layer_maps(model, b, t, layer, kind)))
    for kind in ("occlusion, black patches", "integrated gradients, black", "integrated gradients, mean colour"):
        rows.append((kind, "", lambda b, t, kind=kind: captum_maps(model, b, t, kind, black)))
    for label, layer, make in rows:
        mean, median, empty = score(make, batch, pictures, targets)
        print(f"{label:<34} {layer:<11} {mean:5.2f} {median:6.2f} {empty:5d}", flush=True)


if __name__ == "__main__":
    main()
