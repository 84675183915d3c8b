"""An autoencoder (task reconstruction) through zoo.load, zoo predict, zoo export and zoo explain: the reconstruction
and its anomaly score from every source alike, verdicts at the run's threshold, the exported graphs' outputs (the
reconstruction in [0, 1]; the code, with --encoder) against eager PyTorch, the error maps, and the refusals.

One conv_autoencoder trained on the digit 3 for 20 short epochs (about 9 s) serves the module; the export of every
registered autoencoder runs on untrained checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from bad_input_cases import run_zoo
from PIL import Image
from sklearn.datasets import load_digits

import zoo
from zoo.checkpoint import Normalization, TrainingState, read_state, save_checkpoint
from zoo.config import validate_config
from zoo.errors import ZooError
from zoo.inference.explain import explain
from zoo.inference.export import TOLERANCE, export_checkpoint
from zoo.inference.load import AnomalyScore, AutoencoderPredictor
from zoo.inference.predict import predict_files
from zoo.present.grids import PANEL
from zoo.present.text import render_predictions
from zoo.training import train

PICTURES = 12  # of each digit


def _config(output: Path, **model: object) -> dict:
    return {"task": "reconstruction", "model": {"name": "conv_autoencoder", **model},
            "data": {"name": "digits", "input_size": 28, "batch_size": 32, "classes": [3]},
            "optimizer": {"name": "adam", "lr": 0.005},
            "train": {"epochs": 20, "seed": 0, "output_dir": str(output)}}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict[int, list[Path]]]:
    """(best.pt of a conv_autoencoder trained on the digit 3, {digit: PNG files of the data set's 3s and 7s, stored
    as the data set holds them: 8x8, pixel x 16}). 20 epochs: at 5 the 7s score no higher than the 3s on average."""
    work = tmp_path_factory.mktemp("autoencoder")
    checkpoint = train(validate_config(_config(work / "runs")), quiet=True).run_dir / "checkpoints" / "best.pt"
    data = load_digits()
    files: dict[int, list[Path]] = {}
    for digit in (3, 7):
        folder = work / "digits" / str(digit)
        folder.mkdir(parents=True)
        chosen = [image for image, label in zip(data.images, data.target) if label == digit][-PICTURES:]
        files[digit] = []
        for number, image in enumerate(chosen):
            path = folder / f"{digit}_{number:02d}.png"
            Image.fromarray((image * 16).clip(0, 255).astype(np.uint8)).save(path)
            files[digit].append(path)
    return checkpoint, files


def _untrained(name: str, folder: Path, task: str = "reconstruction") -> Path:
    """An untrained checkpoint of `name` whose config names synthetic pictures at the model's own size (the export's
    check runs on them), with an anomaly threshold for an autoencoder."""
    channels, side = zoo.get_model_info(name).input_size[:2]
    config = validate_config({"task": task, "model": {"name": name},
                              "data": {"name": "synthetic", "input_size": side, "synthetic_classes": 2,
                                       "synthetic_size": 32}})
    network = config.model.build(2, channels)
    normalization = Normalization((0.0,) * channels, (1.0,) * channels, side, channels)
    state = TrainingState.of_network(network, config.to_dict(), ["a", "b"], normalization)
    state.anomaly_threshold = 0.05 if task == "reconstruction" else None
    path = folder / f"{name}.pt"
    save_checkpoint(state, path)
    return path


def test_every_source_gives_the_checkpoints_reconstructions_scores_and_threshold(run, tmp_path):
    checkpoint, files = run
    pictures = files[3][:4] + files[7][:4]
    eager = zoo.load(checkpoint.parent.parent)  # the run directory: its best.pt
    assert isinstance(eager, AutoencoderPredictor) and eager.classes == ["3"] and eager.num_classes == 0
    assert eager.threshold == read_state(checkpoint, "evaluate").anomaly_threshold is not None
    rebuilt, scores = eager.reconstruct(pictures), eager.anomaly_scores(pictures)
    assert rebuilt.shape == (8, 1, 28, 28) and rebuilt.dtype == torch.float32
    assert 0 <= rebuilt.min() and rebuilt.max() <= 1 and scores.shape == (8,) and scores.dtype == torch.float64
    batch = torch.stack([eager.prepare(path) for path in pictures])
    by_hand = (rebuilt.double() - batch.double()).square().mean(dim=(1, 2, 3))  # the MSE of each picture
    assert torch.allclose(scores, by_hand, atol=1e-12)
    assert torch.equal(eager.reconstruct(batch), rebuilt)  # a preprocessed tensor as the paths
    with Image.open(pictures[0]) as image:
        assert torch.allclose(eager.reconstruct(image), rebuilt[:1], atol=1e-6)  # one PIL image, a batch of its own
    for format in ("onnx", "safetensors"):
        exported = zoo.load(export_checkpoint(checkpoint, format, tmp_path / f"ae.{format}").path)
        assert isinstance(exported, AutoencoderPredictor) and exported.threshold == eager.threshold
        assert exported.classes == ["3"] and exported.preprocessing == eager.preprocessing
        assert (exported.reconstruct(pictures) - rebuilt).abs().max() <= 1e-5, format
        assert (exported.anomaly_scores(pictures) - scores).abs().max() <= 1e-6, format


def test_other_digits_score_higher_and_verdicts_follow_the_threshold(run):
    checkpoint, files = run
    predictor = zoo.load(checkpoint)
    threes, sevens = predictor.anomaly_scores(files[3]), predictor.anomaly_scores(files[7])
    assert sevens.mean() > 1.2 * threes.mean(), (threes.mean(), sevens.mean())  # measured: 1.8 times
    records = predictor.predict(files[3] + files[7])
    assert all(isinstance(record, AnomalyScore) for record in records)
    assert [record.score for record in records] == pytest.approx(torch.cat([threes, sevens]).tolist(), rel=1e-5)
    threshold = predictor.threshold
    assert [record.verdict for record in records] == [
        "abnormal" if record.score > threshold else "normal" for record in records]
    assert {record.threshold for record in records} == {threshold}
    assert sum(record.verdict == "abnormal" for record in records[PICTURES:]) > \
        sum(record.verdict == "abnormal" for record in records[:PICTURES])
    with pytest.raises(ZooError, match="is an autoencoder; it scores pictures by their reconstruction error"):
        predictor.predict(files[3], top_k=3)
    with pytest.raises(ZooError, match="gives its reconstruction, not logits"):
        predictor.logits(torch.rand(1, 1, 28, 28))
    with pytest.raises(ZooError, match="no pictures given"):
        predictor.reconstruct([])


def test_predict_files_and_the_command_print_score_and_verdict(run, tmp_path):
    checkpoint, files = run
    report = predict_files(checkpoint, [files[3][0].parent, files[7][0]], device="cpu")
    assert report.task == "reconstruction" and report.threshold == zoo.load(checkpoint).threshold
    assert [path for path, _ in report.rows] == [*files[3], files[7][0]]
    table = render_predictions(report).splitlines()
    assert table[0].split() == ["image", "score", "verdict"] and len(table) == 2 + PICTURES + 1 + 2
    assert table[-1].endswith(f"abnormal above the run's threshold {report.threshold:.5f}")
    three = files[3][:3]
    result = run_zoo(["predict", str(checkpoint), *map(str, three), "--format", "csv"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "path,score,verdict" and len(lines) == 4
    path, score, verdict = lines[1].split(",")
    assert path == str(three[0]) and float(score) == pytest.approx(report.rows[0][1].score, rel=1e-5)
    assert verdict == report.rows[0][1].verdict
    data = json.loads(run_zoo(["predict", str(checkpoint), str(three[0]), "-f", "json"], tmp_path).stdout)
    assert data["task"] == "reconstruction" and data["threshold"] == report.threshold and data["images"] == 1
    assert data["predictions"] == [{"path": str(three[0]), "score": pytest.approx(report.rows[0][1].score, rel=1e-5),
                                    "verdict": report.rows[0][1].verdict}] and data["skipped"] == []


def test_an_export_without_a_threshold_gives_no_verdict(run, tmp_path):
    """An export whose metadata lacks anomaly_threshold and part (as older exports would) loads, with no verdict."""
    from safetensors.torch import load_file, save_file

    from zoo.checkpoint import read_safetensors

    checkpoint, files = run
    written = export_checkpoint(checkpoint, "safetensors", tmp_path / "ae.safetensors").path
    _, strings = read_safetensors(written)
    older = {key: value for key, value in strings.items() if key not in ("anomaly_threshold", "part")}
    save_file(load_file(written), tmp_path / "older.safetensors", metadata=older)
    predictor = zoo.load(tmp_path / "older.safetensors")
    assert predictor.threshold is None
    assert [record.verdict for record in predictor.predict(files[7][:2])] == [None, None]
    table = render_predictions(predict_files(tmp_path / "older.safetensors", files[7][:1], device="cpu"))
    assert table.splitlines()[2].split()[-1] == "-" and "no verdict: the run chose no threshold" in table


def test_export_writes_the_reconstruction_and_the_encoder_alone(run, tmp_path):
    import onnxruntime

    checkpoint, files = run
    model = zoo.load(checkpoint).model.autoencoder
    images = torch.rand(5, 1, 28, 28)
    for format in ("onnx", "pt2", "safetensors"):
        whole = export_checkpoint(checkpoint, format, tmp_path / f"ae.{format}")
        assert whole.outputs == "reconstruction" and whole.top1_agreement is None
        assert whole.max_abs_diff <= whole.tolerance == TOLERANCE and whole.verdict_agreement == 1.0
        part = export_checkpoint(checkpoint, format, tmp_path / f"encoder.{format}", encoder=True)
        assert part.outputs == "code" and part.verdict_agreement is None and part.max_abs_diff <= part.tolerance
    graph = onnx.load(str(tmp_path / "ae.onnx"))
    assert [output.name for output in graph.graph.output] == ["reconstruction"]
    props = {entry.key: json.loads(entry.value) for entry in onnx.load(str(tmp_path / "encoder.onnx")).metadata_props}
    assert props["part"] == "encoder" and props["task"] == "reconstruction" and props["num_classes"] == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "encoder.onnx"))
    code = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
    with torch.no_grad():
        assert code.shape == (5, *model.code_shape(28)) and torch.allclose(code, model.encode(images), atol=1e-5)
        rebuilt = onnxruntime.InferenceSession(str(tmp_path / "ae.onnx")).run(None, {"images": images.numpy()})[0]
        assert torch.allclose(torch.from_numpy(rebuilt), model(images).sigmoid(), atol=1e-5)
    from safetensors.torch import load_file

    assert set(load_file(tmp_path / "encoder.safetensors")) == {f"encoder.{key}" for key in model.encoder.state_dict()}
    for name in ("encoder.onnx", "encoder.safetensors"):
        with pytest.raises(ZooError, match=f"{name} is an autoencoder's encoder alone .zoo export --encoder."):
            zoo.load(tmp_path / name)
    default = export_checkpoint(checkpoint, "onnx", encoder=True).path
    assert default == checkpoint.with_name("best.encoder.onnx")
    default.unlink()


@pytest.mark.parametrize("name", zoo.list_models(task="reconstruction"))
def test_every_autoencoder_exports_within_tolerance_and_loads_alike(name, tmp_path):
    path = _untrained(name, tmp_path)
    eager = zoo.load(path)
    images = torch.rand(3, *eager.preprocessing.shape)
    for format in ("onnx", "pt2", "safetensors"):
        report = export_checkpoint(path, format)
        assert report.inputs == "test images of synthetic" and report.max_abs_diff <= report.tolerance == TOLERANCE
        if format != "pt2":  # zoo.load refuses .pt2 (it unpickles)
            loaded = zoo.load(report.path)
            assert (loaded.reconstruct(images) - eager.reconstruct(images)).abs().max() <= 1e-5
            assert loaded.threshold == eager.threshold == 0.05
        report.path.unlink()


def test_explain_draws_the_picture_its_reconstruction_and_the_error(run, tmp_path):
    checkpoint, files = run
    pictures = [files[3][0], files[7][0]]
    report = explain(checkpoint, [str(path) for path in pictures], output=tmp_path / "maps", device="cpu")
    scores = zoo.load(checkpoint).anomaly_scores(pictures)
    assert report.method == "error" and [row.path for row in report.rows] == pictures
    assert [row.anomaly.score for row in report.rows] == pytest.approx(scores.tolist(), rel=1e-5)
    for row, path in zip(report.rows, pictures):
        assert row.written == tmp_path / "maps" / f"{path.stem}.error.png"
        with Image.open(row.written) as image:
            assert image.width >= 3 * PANEL and PANEL < image.height < 2 * PANEL  # three panels, a bar, a caption
            panels = np.asarray(image.convert("RGB"))[8:PANEL, :]
            assert len(np.unique(panels.reshape(-1, 3), axis=0)) > 20  # gray pictures and a coloured heat map
    onnx_file = export_checkpoint(checkpoint, "onnx", tmp_path / "ae.onnx").path  # no gradients needed
    from_onnx = explain(onnx_file, [str(pictures[1])], device="cpu")
    assert from_onnx.rows[0].written == tmp_path / "ae.explain" / f"{pictures[1].stem}.error.png"
    assert from_onnx.rows[0].anomaly.score == pytest.approx(scores[1].item(), rel=1e-4)
    result = run_zoo(["explain", str(checkpoint), str(pictures[0]), "-o", str(tmp_path / "cli")], tmp_path)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.splitlines()[0].startswith(f"{pictures[0]}: reconstruction error ")
    assert (tmp_path / "cli" / f"{pictures[0].stem}.error.png").stat().st_size > 5000


BAD = {  # what is wrong: (the arguments after `zoo`, a fragment of the one line printed)
    "predict --top-k": ("predict {ae} {picture} --top-k 2", "--top-k: {ae} is an autoencoder; it gives each picture "
                        "an anomaly score (its reconstruction error) and a verdict, not classes to rank"),
    "explain --method": ("explain {ae} {picture} --method gradcam", "--method gradcam: {ae} is an autoencoder; zoo "
                         "explain draws its reconstruction error"),
    "explain --filters": ("explain {ae} --filters", "--filters: {ae} is an autoencoder"),
    "explain --target": ("explain {ae} {picture} --target 3", "--target 3: {ae} is an autoencoder"),
    "export --encoder of a classifier": ("export {classifier} --encoder", "--encoder: lenet5 is a classification "
                                         "network, not an autoencoder (task reconstruction)"),
    "predict with an encoder": ("predict {encoder} {picture}", "best.encoder.onnx is an autoencoder's encoder alone"),
}


@pytest.fixture(scope="module")
def refused(run, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("refused")
    checkpoint, files = run
    encoder = export_checkpoint(checkpoint, "onnx", folder / "best.encoder.onnx", encoder=True).path
    return {"ae": checkpoint, "picture": files[3][0], "classifier": _untrained("lenet5", folder, "classification"),
            "encoder": encoder}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_code_2_and_nothing_written(refused, case, tmp_path):
    arguments, message = BAD[case]
    args = arguments.format(**refused).split()
    watched = [tmp_path, *{path.parent for path in refused.values()}]
    before = {path: path.stat().st_mtime_ns for folder in watched for path in [folder, *folder.rglob("*")]}
    result = run_zoo(args, tmp_path)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message.format(**refused) in lines[0], lines
    assert {path: path.stat().st_mtime_ns for folder in watched for path in [folder, *folder.rglob("*")]} == before
