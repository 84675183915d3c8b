"""zoo stylize (zoo.inference.stylize): the paper's losses computed by hand, VGG-19's layers where the paper takes
them, the optimisation on small pictures with random weights (content alone recovers the content picture, style
alone matches the Grams without the arrangement), the files written atomically or not at all, the offline refusal,
bad input, and the command. No download: weights=None (random) or a state_dict file made here."""

from __future__ import annotations

import json
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_input_cases import run_zoo
from PIL import Image
from sklearn.datasets import load_sample_image
from torch import nn

import zoo
from zoo.errors import ZooError
from zoo.inference import stylize as module
from zoo.inference.stylize import LAYERS, Settings, pictures, stylize, vgg19_features


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, Path]:
    """scikit-learn's two sample photographs as JPEG files: the temple (content) and the flower (style)."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in ("china", "flower"):
        path = folder / f"{name}.jpg"
        Image.fromarray(load_sample_image(f"{name}.jpg")).resize((96, 64)).save(path, quality=95)
        paths.append(path)
    return paths[0], paths[1]


def quadrants(side: int, seed: int) -> Image.Image:
    """A picture with an arrangement: small squares, red in the top-left quadrant, green top-right, blue
    bottom-left, yellow bottom-right, on light grey."""
    rng = np.random.default_rng(seed)
    pixels = np.full((side, side, 3), 0.9)
    half = side // 2
    colours = ([0.9, 0.1, 0.1], [0.1, 0.7, 0.1], [0.1, 0.1, 0.9], [0.9, 0.8, 0.1])
    for colour, (top, left) in zip(colours, ((0, 0), (0, half), (half, 0), (half, half))):
        for _ in range(half):
            y, x = rng.integers(top, top + half - 3), rng.integers(left, left + half - 3)
            pixels[y:y + 3, x:x + 3] = colour
    return Image.fromarray((pixels * 255).astype(np.uint8))


def as_tensor(picture: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(picture)).permute(2, 0, 1)[None].float() / 255


def layout_correlation(first: torch.Tensor, second: torch.Tensor) -> float:
    """How alike two pictures' arrangements are: the correlation of their 4 x 4 blocks' mean colours (1: the same)."""
    blocks = [nn.functional.adaptive_avg_pool2d(picture, 4).flatten() for picture in (first, second)]
    return float(torch.corrcoef(torch.stack(blocks))[0, 1])


# ---- the losses and the network -------------------------------------------------------------------

def test_the_style_error_is_the_papers_formula():
    response = torch.rand(1, 3, 2, 4)
    target = torch.rand(3, 3)
    flat = response.reshape(3, 8).double()
    gram_by_hand = np.array([[float(flat[i] @ flat[j]) for j in range(3)] for i in range(3)])
    assert np.allclose(module.gram(response).numpy(), gram_by_hand, rtol=1e-5)
    expected = ((gram_by_hand - target.double().numpy()) ** 2).sum() / (4 * 3 ** 2 * 8 ** 2)  # 1/(4 N^2 M^2)
    assert float(module.style_error(response, target)) == pytest.approx(expected, rel=1e-5)


def test_total_variation_sums_squared_neighbour_differences():
    picture = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]]]])
    assert float(module.total_variation(picture)) == pytest.approx(0.5 ** 2 + 0.5 ** 2 + 1.0 ** 2 + 0.0)


def test_the_layers_are_the_relus_after_the_papers_convolutions():
    features = vgg19_features(None, "max")
    convolutions = [index for index, layer in enumerate(features) if isinstance(layer, nn.Conv2d)]
    # conv1_1 is the 1st convolution, conv2_1 the 3rd, conv3_1 the 5th, conv4_1 the 9th, conv4_2 the 10th, conv5_1
    # the 13th (VGG-19: 2, 2, 4, 4 convolutions before the last stage)
    for name, nth in {"conv1_1": 1, "conv2_1": 3, "conv3_1": 5, "conv4_1": 9, "conv4_2": 10, "conv5_1": 13}.items():
        assert convolutions[nth - 1] == LAYERS[name] - 1 and isinstance(features[LAYERS[name]], nn.ReLU), name
    assert len(features) == LAYERS["conv5_1"] + 1 and not any(p.requires_grad for p in features.parameters())
    assert sum(isinstance(layer, nn.MaxPool2d) for layer in features) == 4
    averaged = vgg19_features(None, "avg")
    assert sum(isinstance(layer, nn.AvgPool2d) for layer in averaged) == 4
    assert not any(isinstance(layer, nn.MaxPool2d) for layer in averaged)


def test_responses_are_scaled_to_a_mean_of_one_per_filter_as_in_the_papers_network(photos):
    content, style = pictures(*photos, 32)
    torch.manual_seed(0)
    network = vgg19_features(None)
    first, second = (module.responses(network, picture, tuple(LAYERS)) for picture in (content, style))
    scales = module.channel_scales(first, second)
    for name in LAYERS:
        means = ((first[name] + second[name]) * scales[name]).mean(dim=(0, 2, 3)) / 2
        floored = scales[name].flatten() == scales[name].max()  # the filters nearly silent on both pictures
        assert torch.allclose(means[~floored], torch.ones(1), atol=1e-4), name
        assert (means[floored] <= 1 + 1e-4).all() and floored.float().mean() < 0.5, name


def test_the_style_picture_covers_the_content_picture_without_stretching(photos):
    content, _ = photos
    wide = Image.new("RGB", (200, 50), "red")
    wide.paste(Image.new("RGB", (100, 50), "blue"), (50, 0))  # blue in the middle half
    first, second = pictures(content, wide, 48)
    assert first.shape == second.shape == (1, 3, 32, 48)  # the content's 96 x 64, longer side 48
    assert float(second[0, 2].mean()) > 0.95  # centre-cropped: only the blue middle, not the red ends squeezed in


# ---- the optimisation (random weights, small pictures) --------------------------------------------

def test_the_total_loss_falls_by_90_percent(photos):
    result = stylize(*photos, weights=None, size=48, steps=25, init="noise", quiet=True)
    assert [losses.step for losses in result.losses] == list(range(26))
    assert result.losses[-1].total <= 0.1 * result.losses[0].total, (result.losses[0], result.losses[-1])
    last = result.losses[-1]
    assert last.total == pytest.approx(last.content + last.style + last.tv, rel=1e-4)
    assert result.picture.size == (48, 32)  # the 96 x 64 content, its longer side at 48


def test_content_alone_from_noise_moves_towards_the_content_picture(photos):
    result = stylize(*photos, weights=None, size=32, steps=30, init="noise", style_weight=0, quiet=True)
    content = pictures(*photos, 32)[0]
    with torch.random.fork_rng():
        torch.manual_seed(0)  # stylize's seed: the noise it started from
        start = torch.rand_like(content)
    before = float(((start - content) ** 2).mean())
    after = float(((as_tensor(result.picture) - content) ** 2).mean())
    assert result.losses[-1].content <= 0.05 * result.losses[0].content
    assert after <= 0.7 * before, (before, after)
    assert result.losses[-1].style == 0


def test_style_alone_matches_the_grams_but_not_the_arrangement():
    # The arrangement is lost above the deepest style layer's receptive field (conv3_1's: 24 px), here the 32 px
    # quadrants; the paper's five layers need pictures larger than conv5_1's 156 px (the slow test below).
    style = quadrants(64, seed=0)
    result = stylize(quadrants(64, seed=1), style, weights=None, size=64, steps=40, init="noise", content_weight=0,
                     style_layers=("conv1_1", "conv2_1", "conv3_1"), quiet=True)
    assert result.losses[-1].style <= 0.05 * result.losses[0].style
    assert layout_correlation(as_tensor(result.picture), as_tensor(style)) < 0.5


@pytest.mark.slow
def test_the_five_layers_keep_the_arrangement_of_a_picture_smaller_than_their_field():
    style = quadrants(64, seed=0)
    result = stylize(quadrants(64, seed=1), style, weights=None, size=64, steps=60, init="noise", content_weight=0,
                     quiet=True)
    assert result.losses[-1].style <= 0.05 * result.losses[0].style
    assert layout_correlation(as_tensor(result.picture), as_tensor(style)) > 0.8


def test_adam_keeps_the_picture_in_range_and_lowers_the_loss(photos):
    result = stylize(*photos, weights=None, size=24, steps=15, init="noise", optimizer="adam", lr=0.05, quiet=True)
    assert result.losses[-1].total < 0.5 * result.losses[0].total
    assert len(result.losses) == 16


def test_the_seed_decides_the_result(photos):
    runs = [stylize(*photos, weights=None, size=24, steps=3, init="noise", seed=seed, quiet=True) for seed in (1, 1, 2)]
    assert runs[0].picture.tobytes() == runs[1].picture.tobytes() != runs[2].picture.tobytes()


# ---- the files ------------------------------------------------------------------------------------

def test_the_picture_and_its_losses_are_written_atomically(photos, tmp_path, monkeypatch):
    import zoo.rundir

    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(zoo.rundir.os, "replace", lambda source, target: (replaced.append((Path(source), Path(
        target))), real_replace(source, target))[1])
    result = stylize(*photos, tmp_path / "out.jpg", weights=None, size=24, steps=3, quiet=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.jpg", "out.losses.json"]
    assert [target.name for _, target in replaced] == ["out.jpg", "out.losses.json"]
    assert all(source.parent == tmp_path and source.name.startswith(".out.") for source, _ in replaced)
    with Image.open(tmp_path / "out.jpg") as written:
        assert written.format == "JPEG" and written.size == result.picture.size
    record = json.loads((tmp_path / "out.losses.json").read_text())
    assert [step["step"] for step in record["steps"]] == [0, 1, 2, 3] and record["settings"]["steps"] == 3
    assert record["steps"][-1]["total"] == pytest.approx(result.losses[-1].total)
    assert result.output == tmp_path / "out.jpg" and result.losses_file == tmp_path / "out.losses.json"


def test_a_run_that_fails_leaves_nothing(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(module, "total_variation", lambda picture: picture.sum() * float("nan"))
    with pytest.raises(ZooError, match=r"^the starting picture's loss is nan: a loss weight is too large"):
        stylize(*photos, tmp_path / "out.png", weights=None, size=24, steps=3, quiet=True)
    assert list(tmp_path.iterdir()) == []
    calls = []

    def nan_after_the_start(picture):  # finite for the starting picture, NaN once the optimiser has moved it
        calls.append(1)
        return picture.sum() * (0.0 if len(calls) == 1 else float("nan"))

    monkeypatch.setattr(module, "total_variation", nan_after_the_start)
    with pytest.raises(ZooError, match=r"^the loss became nan after 1 step \(the optimisation diverged\); try "):
        stylize(*photos, tmp_path / "out.png", weights=None, size=24, steps=3, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_a_losses_file_that_cannot_be_written_takes_the_picture_with_it(photos, tmp_path):
    (tmp_path / "out.losses.json").mkdir()  # a folder where the losses go: the rename onto it fails
    with pytest.raises(ZooError, match="cannot write .*out.losses.json"):
        stylize(*photos, tmp_path / "out.png", weights=None, size=24, steps=2, quiet=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.losses.json"]


def test_offline_the_imagenet_weights_are_one_line_naming_where_to_place_them(photos, tmp_path, monkeypatch):
    def no_network(url, destination, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ZooError) as refused:
        stylize(*photos, tmp_path / "out.png", size=24, steps=1, quiet=True)
    message = str(refused.value)
    assert "\n" not in message
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert message.endswith(f"place it at {tmp_path / 'hub' / 'checkpoints' / 'vgg19-dcbb9e9d.pth'}")
    assert not (tmp_path / "out.png").exists()


def test_weights_from_a_state_dict_file(photos, tmp_path):
    random = vgg19_features(None, "max")
    state = {f"module.features.{key}": value for key, value in random.state_dict().items()}  # DataParallel's
    torch.save(state, tmp_path / "vgg19.pth")
    loaded = vgg19_features(tmp_path / "vgg19.pth", "max")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), random.state_dict().values()))
    del state["module.features.28.weight"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(ZooError, match="short.pth does not hold VGG-19's features: features.28.weight is missing"):
        vgg19_features(tmp_path / "short.pth")


# ---- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "message"), [
    ({"size": 8}, "--size 8: give the longer side in pixels, 16 to 4096"),
    ({"size": 5000}, "--size 5000: give the longer side in pixels, 16 to 4096"),
    ({"steps": 0}, "--steps 0: give 1 or more optimizer steps"),
    ({"style_weight": -1.0}, "--style-weight -1.0: give a weight of 0 or more"),
    ({"tv_weight": float("nan")}, "--tv-weight nan: give a weight of 0 or more"),
    ({"content_weight": 0, "style_weight": 0}, "are both 0: give one of them above 0"),
    ({"lr": 0.1}, "--lr 0.1 is Adam's step size; L-BFGS's line search finds its own"),
    ({"style_layers": ("conv4_2",)}, "--style-layers conv4_2: give one or more of conv1_1, conv2_1"),
    ({"output": "missing/out.png"}, "the folder {tmp}/missing does not exist"),
    ({"output": "out.xyz"}, "Pillow cannot write .xyz pictures; name it *.png or *.jpg"),
    ({"output": "."}, "is a folder; give a picture file"),
    ({"output": "china.jpg"}, "is an input picture; give another file name"),
    ({"content": "nothing.jpg"}, "nothing.jpg not found; give the content picture's file"),
    ({"style": "notes.jpg"}, "notes.jpg cannot be decoded"),
])
def test_bad_input_is_one_line_and_nothing_written(photos, tmp_path, change, message):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.jpg").write_text("not a picture")
    (work / "china.jpg").write_bytes(photos[0].read_bytes())
    arguments = {"content": work / "china.jpg", "style": photos[1], "output": "out.png", **change}
    content, style, output = (arguments.pop(key) for key in ("content", "style", "output"))
    before = sorted(work.iterdir())
    with pytest.raises(ZooError) as refused:
        stylize(work / content, work / style, work / output, weights=None, quiet=True, **{"steps": 1, **arguments})
    assert message.format(tmp=work) in str(refused.value) and "\n" not in str(refused.value)
    assert sorted(work.iterdir()) == before


def test_settings_defaults_are_the_papers():
    settings = Settings()
    assert settings.content_weight / settings.style_weight == 1e-3 and settings.pool == "avg"
    assert settings.style_layers == ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    assert settings.optimizer == "lbfgs" and settings.init == "content" and settings.size == 256
    assert zoo.stylize is stylize


# ---- the command ----------------------------------------------------------------------------------

def test_the_command_writes_the_picture_and_says_so(photos, tmp_path):
    result = run_zoo(["stylize", str(photos[0]), str(photos[1]), "--weights", "random", "--size", "24", "--steps",
                      "10", "--init", "noise"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote china-flower.png (24 x 16) and china-flower.losses.json: loss ")
    assert "after 10 steps" in result.stdout
    progress = result.stderr.splitlines()
    assert [line.split()[1] for line in progress] == ["1/10", "10/10"] and "content" in progress[0]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["china-flower.losses.json", "china-flower.png"]


def test_the_command_refuses_an_unknown_pool_in_one_line(photos, tmp_path):
    result = run_zoo(["stylize", str(photos[0]), str(photos[1]), "--pool", "min"], tmp_path)
    assert (result.returncode, result.stderr) == (2, "error: unknown pool 'min'; choose avg or max\n")
    assert list(tmp_path.iterdir()) == []
