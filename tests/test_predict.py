"""zoo predict and zoo.load: the same preprocessing as evaluation, image for image, from every source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from datafiles import damage, write_mnist
from helpers import cache_torchvision_weights, run_zoo
from PIL import Image

import zoo
from zoo.config import load_config
from zoo.errors import ZooError
from zoo.evaluation.evaluate import evaluate_checkpoint
from zoo.inference.predict import gather, predict_files
from zoo.training import train

ROOT = Path(__file__).resolve().parents[1]
COLOURS = {"cat": (200, 60, 40), "dog": (40, 180, 60), "fox": (50, 70, 210)}


def _photo(path: Path, colour: tuple[int, int, int], size: tuple[int, int], seed: int, orientation: int = 1) -> None:
    """A colour with noise, of (width, height); a JPEG with an EXIF orientation tag when `orientation` is not 1."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(path, exif=exif, quality=92)
    else:
        image.save(path)


@pytest.fixture(scope="module")
def pets(tmp_path_factory) -> Path:
    """photos/{train,test}/{cat,dog,fox}: noisy colours of several sizes, PNGs and EXIF-rotated JPEGs."""
    root = tmp_path_factory.mktemp("pets") / "photos"
    for split, count in (("train", 12), ("test", 5)):
        for number, (name, colour) in enumerate(COLOURS.items()):
            for i in range(count):
                seed = hash((split, name, i)) % 2**32
                if i % 3 == 2:
                    _photo(root / split / name / f"{i}.jpg", colour, (48, 30), seed, orientation=6)
                else:
                    _photo(root / split / name / f"{i}.png", colour, (40 + 3 * i, 30), seed)
    return root


@pytest.fixture(scope="module")
def pets_run(pets, tmp_path_factory) -> Path:
    """best.pt of an RGB LeNet-5 trained on the pets for 3 epochs."""
    work = tmp_path_factory.mktemp("pets_run")
    config = load_config(ROOT / "configs" / "lenet5_digits.yaml", [
        "data.name=imagefolder", f"data.root={pets}", "model.in_channels=3", "data.batch_size=8", "train.epochs=3",
        "optimizer.name=adam", "optimizer.lr=0.003", "scheduler.name=none", "data.val_split=0",
        f"train.output_dir={work}"])
    return train(config, quiet=True).run_dir / "checkpoints" / "best.pt"


def _same(first: list, second: list) -> bool:
    """The same classes in the same order, the same probabilities (batches of other sizes round differently)."""
    return len(first) == len(second) and all(
        a.indices == b.indices and a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
        for a, b in zip(first, second))


def _by_path(report) -> dict[str, object]:
    return {str(path): prediction for path, prediction in report.rows}


def test_predict_equals_evaluate_image_for_image(pets, pets_run):
    evaluation = evaluate_checkpoint(pets_run, "test")
    predicted = _by_path(predict_files(pets_run, [pets / "test"], top_k=3, device="cpu", batch_size=4))
    assert len(evaluation.paths) == len(predicted) == 15
    probabilities = evaluation.probabilities
    for path, row in zip(evaluation.paths, probabilities):
        prediction = predicted[path]
        expected = row.topk(3)
        assert prediction.indices[0] == int(row.argmax())
        assert list(prediction.indices) == expected.indices.tolist()
        assert prediction.probabilities == pytest.approx(expected.values.tolist(), abs=1e-6)
        assert prediction.label == evaluation.classes[prediction.indices[0]]


def test_predict_equals_evaluate_on_mnist_files_through_the_in_memory_path(tmp_path):
    """MNIST's test images saved as PNG files and predicted give evaluate's figures: gray, 28 padded to 32."""
    _, _, images, _ = write_mnist(tmp_path / "data", train=60, test=20)
    config = load_config(ROOT / "configs" / "lenet5_mnist.yaml", [
        f"data.root={tmp_path / 'data'}", "data.download=false", "train.epochs=1", "data.batch_size=16",
        f"train.output_dir={tmp_path / 'runs'}"])
    best = train(config, quiet=True).run_dir / "checkpoints" / "best.pt"
    evaluation = evaluate_checkpoint(best, "test")
    assert evaluation.paths is None  # the in-memory path: the images are the split's, in order
    files = tmp_path / "files"
    files.mkdir()
    for index, pixels in enumerate(images):
        Image.fromarray(pixels).save(files / f"{index:02d}.png")
    report = predict_files(best, [files], top_k=10, device="cpu")
    assert [path.name for path, _ in report.rows] == [f"{index:02d}.png" for index in range(20)]
    for (_, prediction), row in zip(report.rows, evaluation.probabilities):
        assert prediction.indices[0] == int(row.argmax())
        ordered = [row[index].item() for index in prediction.indices]
        assert prediction.probabilities == pytest.approx(ordered, abs=1e-5)


def test_zoo_load_predicts_paths_pil_images_and_tensors_alike(pets, pets_run):
    predictor = zoo.load(pets_run)
    assert predictor.classes == ["cat", "dog", "fox"] and not predictor.model.training
    assert predictor.config.model.name == "lenet5" and predictor.preprocessing.shape == (3, 32, 32)
    paths = sorted((pets / "test" / "dog").iterdir())
    by_path = predictor.predict(paths, top_k=2)
    with Image.open(paths[2]) as rotated:  # a PIL image keeps its EXIF tag until it is turned
        pictures = [Image.open(path) for path in paths[:2]] + [rotated.copy()]
    by_image = predictor.predict(pictures, top_k=2)
    batch = torch.stack([predictor.prepare(path) for path in paths])
    assert batch.shape == (len(paths), 3, 32, 32)
    by_tensor = predictor.predict(batch, top_k=2)
    assert _same(by_path[:3], by_image) and _same(by_path, by_tensor)
    assert predictor.predict(paths[0])[0].classes[:2] == by_path[0].classes  # one path alone, top-5 of 3 classes
    assert all(p.label == "dog" for p in by_path)  # the colours are easy


@pytest.mark.parametrize("call, message", [
    (lambda p: p.predict(torch.zeros(2, 1, 32, 32)),
     r"takes N x 3 x 32 x 32 inputs, not a tensor of shape \(2, 1, 32, 32\)"),
    (lambda p: p.predict(torch.zeros(2, 3, 64, 64)),
     r"takes N x 3 x 32 x 32 inputs, not a tensor of shape \(2, 3, 64, 64\)"),
    (lambda p: p.predict(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)), "a uint8 tensor is not a preprocessed batch"),
    (lambda p: p.predict(torch.full((1, 3, 32, 32), float("nan"))), "the batch holds NaN or infinite values"),
    (lambda p: p.predict(torch.zeros(2, 3, 32, 32), top_k=0), "top_k is 0; give 1 or more"),
    (lambda p: p.predict("missing.png"), "missing.png not found"),
    (lambda p: p.predict(ROOT / "configs"), "configs is a folder; give its files"),
    (lambda p: p.predict([np.zeros((4, 4, 3))]),
     "cannot predict a ndarray; give paths, PIL images or one float tensor"),
])
def test_zoo_load_refuses_in_one_line(pets_run, call, message):
    with pytest.raises(ZooError, match=message):
        call(zoo.load(pets_run))


def test_gather_walks_folders_sorted_skips_hidden_and_expands_patterns(tmp_path):
    for name in ("b/2.png", "b/10.png", "a/1.jpg", ".ipynb_checkpoints/x.png", "a/.DS_Store", "a/notes.txt",
                 "__MACOSX/a/._1.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    images, others = gather([tmp_path, str(tmp_path / "b" / "*.png"), tmp_path / "a" / "1.jpg"])
    assert [str(path.relative_to(tmp_path)) for path in images] == ["a/1.jpg", "b/10.png", "b/2.png"]
    assert [path.name for path in others] == ["notes.txt"]
    with pytest.raises(ZooError, match="'.*nothing\\*.png' matches no file"):
        gather([str(tmp_path / "nothing*.png")])
    with pytest.raises(ZooError, match="missing not found; give image files"):
        gather(["missing"])


def test_exported_files_predict_what_the_checkpoint_predicts(pets, pets_run, tmp_path):
    from zoo.inference.export import export_checkpoint

    expected = _by_path(predict_files(pets_run, [pets / "test"], top_k=3, device="cpu"))
    # the .pt2 program is checked when written; zoo.load refuses it (it unpickles)
    for format in ("onnx", "safetensors"):
        report = export_checkpoint(pets_run, format, tmp_path / f"pets.{format}")
        assert report.inputs == "test images of imagefolder" and report.max_abs_diff <= report.tolerance
        assert report.top1_agreement == 1.0
        rows = _by_path(predict_files(report.path, [pets / "test"], top_k=3, device="cpu"))
        assert rows.keys() == expected.keys()
        for path, prediction in rows.items():
            assert prediction.indices[0] == expected[path].indices[0]
            assert prediction.probabilities == pytest.approx(expected[path].probabilities, abs=1e-5)
        loaded = zoo.load(report.path)
        assert loaded.classes == ["cat", "dog", "fox"] and loaded.preprocessing == zoo.load(pets_run).preprocessing
    assert zoo.load(tmp_path / "pets.safetensors").config == zoo.load(pets_run).config


def test_torchvision_weights_predict_as_torchvision_does(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ZooError, match=r"cannot download .*resnet18-f37072fd.pth \(offline\?\); fetch it elsewhere"):
        zoo.load("torchvision:ResNet18_Weights.IMAGENET1K_V1")
    reference = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.normal_(0, 0.05)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), cached)
    predictor = zoo.load("torchvision:ResNet18_Weights.IMAGENET1K_V1")
    assert len(predictor.classes) == 1000 and predictor.classes[0] == "tench"
    photo = tmp_path / "photo.jpg"
    _photo(photo, (120, 100, 80), (300, 260), 0)
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    with torch.no_grad(), Image.open(photo) as image:
        expected = reference(weights.transforms()(image.convert("RGB")).unsqueeze(0)).softmax(1)[0]
    prediction = predictor.predict(photo, top_k=3)[0]
    assert list(prediction.indices) == expected.topk(3).indices.tolist()
    assert prediction.probabilities == pytest.approx(expected.topk(3).values.tolist(), abs=1e-6)
    with pytest.raises(ZooError, match="unknown torchvision weights 'Nope'"):
        zoo.load("torchvision:Nope")


def test_the_predict_command_writes_csv_and_json_and_skips_unreadable_files(pets, pets_run, tmp_path):
    folder = tmp_path / "mixed"
    for path in sorted((pets / "test" / "fox").iterdir())[:3]:
        (folder / path.name).parent.mkdir(exist_ok=True)
        (folder / path.name).write_bytes(path.read_bytes())
    damage(folder / "0.png", "noise")
    # csv by its name
    result = run_zoo("predict", str(pets_run), str(folder), "--output", "out.csv", "-k", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"warning: {folder / '0.png'} cannot be decoded (") and lines[0].endswith("; skipped")
    assert lines[1:] == ["wrote 2 predictions to out.csv"]  # one warning line for the one file (the README's promise)
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[0] == "path,class_1,probability_1,class_2,probability_2" and len(rows) == 3
    assert rows[1].startswith(f"{folder / '1.png'},fox,")
    result = run_zoo("predict", str(pets_run), str(folder / "1.png"), "--format", "json", cwd=tmp_path)
    data = json.loads(result.stdout)
    assert data["images"] == 1 and data["predictions"][0]["top_k"][0]["class"] == "fox"
    assert len(data["predictions"][0]["top_k"]) == 3  # top-5 of 3 classes
    table = run_zoo("predict", str(pets_run), str(folder / "1.png"), cwd=tmp_path).stdout.splitlines()
    assert table[0].split() == ["image", "top-1", "top-2", "top-3"] and " fox " in table[2]


def test_a_truncated_jpeg_is_one_warning_line_and_many_are_counted_past_ten(pets, pets_run, tmp_path, capsys):
    # A real JPEG cut in half: a file and a count line were two warnings for it, where the README promises one.
    from datafiles import write_jpeg

    good = pets / "test" / "fox" / "1.png"
    half = damage(write_jpeg(tmp_path / "one" / "cut.jpg", size=(64, 48)), "half")
    report = predict_files(pets_run, [good, half])
    assert [path for path, _ in report.rows] == [good] and [path for path, _ in report.skipped] == [half]
    lines = capsys.readouterr().err.splitlines()
    assert (len(lines) == 1 and lines[0].startswith(f"warning: {half} cannot be decoded (")
            and lines[0].endswith("; skipped"))
    many = [damage(write_jpeg(tmp_path / "many" / f"{i:02}.jpg", seed=i), "half") for i in range(12)]
    assert len(predict_files(pets_run, [good, *many]).skipped) == 12
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" cannot be decoded")[0] for line in lines[:10]] == [f"warning: {path}" for path in many[:10]]
    assert lines[10:] == ["warning: 2 more of the 13 image files could not be read and have no prediction"]


@pytest.mark.parametrize("args, message", [
    (["predict", "best.pt", "nothing/"], "nothing/ not found"),
    (["predict", "notes", "bad.png"], "notes is a folder without checkpoints/best.pt, not a checkpoint"),
    (["predict", "notes/a.txt", "bad.png"], "a.txt is damaged or not a PyTorch checkpoint"),
    (["predict", "best.pt", "bad.png", "-f", "json", "-o", "out.csv"],
     "--output out.csv is named for csv but --format is json"),
    (["predict", "best.pt", "bad.png", "-o", "notes"], "--output notes is a folder"),
    (["export", "best.pt", "-o", "best.safetensors"], "an onnx file is named *.onnx"),
    (["export", "best.pt", "-f", "safetensors", "--batch", "4"], "--batch is for onnx and pt2"),
    (["export", "best.pt", "-o", "bad.png/model.onnx"], "cannot write bad.png/model.onnx"),
    (["predict", "best.pt", "bad.png", "--output", "out.csv"],
     "none of the 1 image files could be read (bad.png cannot"),
    (["predict", "best.pt", "notes/"], "no image files in notes/ (only 1 file of other kinds)"),
    (["predict", "nope.onnx", "bad.png"], "'nope.onnx' not found"),
    (["predict", "best.pt", "bad.png", "-k", "0"], "--top-k must be 1 or more"),
])
def test_bad_predict_input_is_one_line_and_writes_nothing(pets_run, tmp_path, args, message):
    (tmp_path / "best.pt").write_bytes(pets_run.read_bytes())
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    before = sorted(tmp_path.rglob("*"))
    result = run_zoo(*args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_googlenet_weights_predict_as_torchvisions_googlenet_with_transform_input(tmp_path, monkeypatch):
    """torchvision's GoogLeNet turns ImageNet-normalized input into (x - 0.5) / 0.5, the statistics Google's weights
    were trained with; zoo's network takes its input as it comes, so the preprocessing uses those statistics."""
    from zoo.training.finetune import read_source

    # torchvision's file holds the auxiliary heads (its builder loads them, then drops them), and so does this one
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True,
                                             transform_input=True).eval()
    weights = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1
    cache_torchvision_weights(weights, reference.state_dict(), tmp_path, monkeypatch)
    photo = tmp_path / "photo.png"
    _photo(photo, (90, 140, 200), (260, 300), 1)
    with torch.no_grad(), Image.open(photo) as image:
        expected = reference(weights.transforms()(image.convert("RGB")).unsqueeze(0)).softmax(1)[0]
    prediction = zoo.load(f"torchvision:{weights}").predict(photo, top_k=3)[0]
    assert list(prediction.indices) == expected.topk(3).indices.tolist()
    assert prediction.probabilities == pytest.approx(expected.topk(3).values.tolist(), abs=1e-5)
    source = read_source(f"torchvision:{weights}", "googlenet")  # fine-tuning normalizes the same way
    assert source.normalization.mean == (0.5, 0.5, 0.5) and source.normalization.std == (0.5, 0.5, 0.5)


def test_a_top_k_above_the_class_count_shows_every_class_and_says_so(pets, pets_run, capsys):
    report = predict_files(pets_run, [pets / "test"], top_k=20, device="cpu")
    classes = len(report.rows[0][1].classes)
    assert all(len(prediction.classes) == classes for _, prediction in report.rows)
    note = [line for line in capsys.readouterr().err.splitlines() if "--top-k" in line]
    assert note == [f"note: --top-k 20 is more than the {classes} classes {pets_run} predicts; showing all {classes}"]
