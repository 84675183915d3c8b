"""TextCNN (Kim 2014) and sentences as data, end to end, on a corpus the tests write: three classes of template
sentences, each with two of its class's words among common ones, 5% of the labels drawn at random, as a CSV and as
JSON lines. The tokenizer, the training split's vocabulary, padding and the cut; the network (its parameter count,
max-norm, logits the same in any batch); pretrained word vectors, static and non-static; training well above chance,
exact resume, zoo predict --text, the ONNX and safetensors exports, zoo evaluate and zoo summary; and the one-line
refusals of image-only options (the CLI's: tests/bad_input_cases.py).
Tests zoo.models.textcnn, zoo.data.text and the text paths of zoo.inference, zoo.training and zoo.summary."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import pytest
import torch
from conftest import count_params
from helpers import ROOT, stopped_and_resumed

import zoo
from zoo.checkpoint import Vocabulary, load_checkpoint, read_state
from zoo.config import load_config
from zoo.data.text import MIN_TOKENS, pad, read_vectors, text_splits, tokenize
from zoo.errors import ZooError

CONFIG = ROOT / "configs" / "textcnn_sentences.yaml"
WORDS = {"food": ("pizza", "recipe", "dinner", "spicy", "bakery", "soup", "chef"),
         "sports": ("goal", "match", "team", "coach", "league", "striker", "score"),
         "weather": ("rain", "storm", "sunny", "forecast", "cloudy", "wind", "snow")}
COMMON = ("the", "a", "today", "was", "really", "we", "saw", "about", "and", "it", "very", "this", "news", "people")
SMALL = ("model.embedding_dim=32", "model.feature_maps=16", "optimizer.lr=0.01", "data.batch_size=25")  # quick


def corpus(per_class: int = 100, seed: int = 0, noise: float = 0.05) -> list[tuple[str, str]]:
    """(sentence, label) rows: two of the class's words among 3 to 8 common ones, shuffled; `noise` of the labels
    drawn from all the classes instead."""
    rng = random.Random(seed)
    rows = []
    for label, own in WORDS.items():
        for _ in range(per_class):
            words = rng.sample(own, 2) + rng.sample(COMMON, rng.randint(3, 8))
            rng.shuffle(words)
            given = rng.choice(sorted(WORDS)) if rng.random() < noise else label
            rows.append((" ".join(words).capitalize() + rng.choice(".!?"), given))
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows: list[tuple], header: tuple[str, ...] = ("text", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([header, *rows])
    return path


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"text": text, "label": label}) + "\n" for text, label in rows))
    return path


def config(out: Path, manifest: Path, *extra: str):
    return load_config(CONFIG, [f"train.output_dir={out}", f"data.manifest={manifest}", *SMALL, *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """CNN-rand, small (32-value vectors, 16 filters a window), 4 epochs of 243 training sentences: 2 s."""
    folder = tmp_path_factory.mktemp("textcnn")
    manifest = write_csv(folder / "sentences.csv", corpus())
    return zoo.train(config(folder / "runs", manifest, "train.epochs=4"), quiet=True)


# ---- the data ------------------------------------------------------------------------------------

def test_the_tokenizer_splits_punctuation_and_clitics_and_lowercases():
    assert tokenize("Don't stop, it's GREAT!") == ["do", "n't", "stop", ",", "it", "'s", "great", "!"]
    assert tokenize("We’ll see... (maybe)") == ["we", "'ll", "see", ".", ".", ".", "(", "maybe", ")"]
    assert tokenize("Café déjà-vu 3.5") == ["café", "déjà", "-", "vu", "3", ".", "5"]  # any script; nothing dropped
    assert tokenize("   ") == [] and tokenize("ＡＢＣ") == ["abc"]  # NFKC: full-width letters are letters


def test_the_vocabulary_is_the_training_splits_with_pad_and_unk_first(tmp_path):
    rows = [("the cat sat", "a", "train"), ("the dog", "b", "train"), ("a zebra", "a", "test"),
            ("the cat", "b", "train"), ("dog dog", "a", "val"), ("x y", "b", "test")]
    manifest = write_csv(tmp_path / "s.csv", rows, ("text", "label", "split"))
    splits = text_splits(load_config(CONFIG, [f"data.manifest={manifest}"]).data)
    vocabulary = splits.vocabulary
    assert vocabulary.words == ("<pad>", "<unk>", "the", "cat", "dog", "sat")  # by count, then as text; no zebra
    assert [len(split) for split in (splits.train, splits.val, splits.test)] == [3, 1, 2]
    zebra, _ = splits.test[0]
    assert zebra.tolist() == [1, 1]  # "a" and "zebra" are only in the test split: <unk>
    assert vocabulary.builder_arguments == {"vocab_size": 6, "padding_idx": 0}
    assert "6 sentences, 2 classes (a, b): train 3, val 1, test 2; a vocabulary of 4 words" in splits.describe("text")


def test_csv_and_json_lines_give_the_same_splits(tmp_path):
    rows = corpus(20)
    data = [text_splits(load_config(CONFIG, [f"data.manifest={path}"]).data, seed=3)
            for path in (write_csv(tmp_path / "s.csv", rows), write_jsonl(tmp_path / "s.jsonl", rows))]
    assert data[0].vocabulary == data[1].vocabulary and data[0].classes == data[1].classes
    assert [ids.tolist() for ids, _ in data[0].test] == [ids.tolist() for ids, _ in data[1].test]


def test_batches_are_padded_to_the_longest_and_the_widest_window_and_long_sentences_cut(tmp_path, capsys):
    assert pad([[4, 5], [6]], MIN_TOKENS).tolist() == [[4, 5, 0, 0, 0], [6, 0, 0, 0, 0]]
    assert pad([[4] * 7, [6]], MIN_TOKENS).shape == (2, 7)
    rows = [(" ".join(["word"] * 12), "a"), ("short one", "b"), ("another short", "a"), ("and more", "b")]
    manifest = write_csv(tmp_path / "s.csv", rows)
    sets = [f"data.manifest={manifest}", "data.max_tokens=8", "data.val_split=0", "data.test_split=0.5"]
    splits = text_splits(load_config(CONFIG, sets).data)
    assert max(len(ids) for ids, _ in [*splits.train, *splits.test]) == 8
    assert capsys.readouterr().err == (f"note: text: 1 sentence of {manifest} has more than data.max_tokens 8 tokens, "
                                       "cut to it (the longest, line 2: 12)\n")


@pytest.mark.parametrize(("text", "message"), [
    ("sentence,label\nhi,a\n", "line 1: no text column (its columns: sentence, label); rename sentence to text"),
    ("text,sentiment\nhi,a\n", "line 1: no label column (its columns: text, sentiment); rename sentiment to label"),
    ("", "is empty; write a header (text,label) and a row per sentence"),
    ("text,label\nhi,a\n  ,b\n", "line 3: no text; give each row its sentence, or remove the row"),
    ("text,label\nhi,a\nho,\n", "line 3: no label; give every sentence its class, or remove the row"),
    ("text,label,split\nhi,a,\nho,b,test\n", "the class b has no sentence to train on (line 3 is in the test split)"),
])
def test_a_bad_text_manifest_is_one_line_naming_it(tmp_path, text, message):
    (tmp_path / "s.csv").write_text(text)
    with pytest.raises(ZooError, match="^manifest: .*s.csv") as refused:
        text_splits(load_config(CONFIG, [f"data.manifest={tmp_path / 's.csv'}"]).data)
    assert message in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize(("sets", "message"), [
    (["data.augment=true"], "data: augment is for pictures; data.name text gives the network sentences as token ids"),
    (["data.input_size=32"], "data: input_size is for pictures"),
    (["data.name=digits", "data.manifest=null"], "model textcnn reads sentences as token ids; set data.name: text"),
    (["model.name=lenet5"], "data.name text gives sentences as token ids, and lenet5 reads pictures; set model.name "
                            "to a model of sentences: textcnn"),
    (["model.embedding=static"], "embedding static starts from pretrained vectors; set model.vectors"),
    (["model.vectors=v.txt"], "vectors are read by embedding static or non-static"),
    (["model.in_channels=2"], "CNN-multichannel's two are not built"),
    (["train.log_filters=true", "train.epochs=1"], "train.log_filters: textcnn's filters are windows of 3 to 5 words"),
    (["model.vocab_size=5"], "model.vocab_size is 5, but the data makes it 32 (the training split's vocabulary); "
                             "remove model.vocab_size"),
])
def test_options_a_text_run_cannot_take_are_one_line(tmp_path, sets, message):
    manifest = write_csv(tmp_path / "s.csv", corpus(4))
    with pytest.raises(ZooError, match=message.replace("(", r"\(").replace(")", r"\)")):
        zoo.train(config(tmp_path, manifest, *sets), quiet=True)
    assert not any(tmp_path.glob("*/*"))  # nothing written


# ---- the network ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("words", "classes"), [(18_765, 2), (1_000, 5)])
def test_cnn_rand_has_the_papers_parameter_count(words, classes):
    with torch.device("meta"):
        model = zoo.create_model("textcnn", num_classes=classes, vocab_size=words)
    assert count_params(model) == words * 300 + 100 * 300 * (3 + 4 + 5) + 300 + 300 * classes + classes
    assert zoo.get_model_info("textcnn").input == "tokens" and model.min_input_size == MIN_TOKENS


def test_a_sentences_logits_are_the_same_in_any_batch():
    model = zoo.create_model("textcnn", num_classes=3, vocab_size=50, embedding_dim=16, feature_maps=8).eval()
    sentences = [[4, 9, 13], [7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [20, 21, 22, 23, 24]]
    alone = torch.cat([model(pad([ids], MIN_TOKENS)) for ids in sentences])
    together, padded = model(pad(sentences, MIN_TOKENS)), model(pad(sentences, 40))
    assert torch.allclose(alone, together, atol=1e-6) and torch.allclose(alone, padded, atol=1e-6)
    assert torch.equal(model.forward_head(model.forward_features(pad(sentences, 8))), model(pad(sentences, 8)))
    with pytest.raises(ZooError, match="needs at least 5 tokens per sentence, got 4"):
        model(torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ZooError, match="reads token ids, N x L integers, not a 2x10 float32 tensor"):
        model(torch.ones(2, 10))


def test_max_norm_rescales_only_the_rows_longer_than_s():
    model = zoo.create_model("textcnn", num_classes=3, vocab_size=10, embedding_dim=8, feature_maps=4)
    with torch.no_grad():
        model.fc.weight.copy_(torch.tensor([5.0, 1.0, 2.0])[:, None] * torch.nn.functional.normalize(
            torch.randn(3, 12), dim=1))
    model.apply_constraints()
    assert torch.allclose(model.fc.weight.norm(dim=1), torch.tensor([3.0, 1.0, 2.0]), atol=1e-5)
    model.reset_classifier(7)
    assert model.fc.out_features == 7 and model.num_classes == 7


def test_zoo_summary_shows_the_embedding_windows_pooling_and_head():
    summary = zoo.summarize("textcnn")
    assert [layer.name for layer in summary.layers] == ["embedding", "conv3", "act", "pool", "conv4", "conv5",
                                                        "dropout", "fc"]
    assert summary.input == "tokens" and summary.input_size == (20,)
    assert summary.layers[0].output_shape == (20, 300) and summary.layers[3].output_shape == (100,)
    assert summary.totals.params == 5_990_402 and summary.totals.macs == 100 * 300 * (3 * 18 + 4 * 17 + 5 * 16) + 600
    with pytest.raises(ZooError, match="--input-size is a picture's C H W; textcnn reads token ids"):
        zoo.summarize("textcnn", (3, 32, 32))


# ---- training, resuming, pretrained vectors ------------------------------------------------------

def test_textcnn_trains_well_above_chance_and_keeps_its_head_rows_within_s(run):
    assert run.metrics["test"]["accuracy"] >= 0.85  # 3 classes: chance is 1/3; 5% of the labels are noise
    state = read_state(run.run_dir / "checkpoints" / "best.pt", "evaluate")
    assert state.vocabulary is not None and state.vocabulary.words[:2] == ("<pad>", "<unk>")
    assert state.model["embedding.weight"].shape == (len(state.vocabulary.words), 32)
    assert float(state.model["fc.weight"].norm(dim=1).max()) <= 3 + 1e-6  # the max-norm constraint, s = 3
    assert "unfamiliar" in run.metrics  # calibrated: the unfamiliar score is the energy alone
    assert state.calibration.familiarity.mean == []


def test_the_max_norm_constraint_acts_after_every_step(tmp_path):
    manifest = write_csv(tmp_path / "s.csv", corpus(20))
    result = zoo.train(config(tmp_path, manifest, "model.max_norm=0.05", "train.epochs=1"), quiet=True)
    norms = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]["fc.weight"].norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, 0.05), atol=1e-6)  # every row grew past s and was rescaled


def test_resume_mid_epoch_is_bit_exact(tmp_path, monkeypatch):
    manifest = write_csv(tmp_path / "s.csv", corpus(40))  # 97 training sentences: 4 steps an epoch

    def make(out: Path):
        return config(out, manifest, "train.epochs=2", "train.checkpoint_every_steps=2", "train.deterministic=true")

    whole, resumed, _ = stopped_and_resumed(make, tmp_path, monkeypatch, step=7)  # epoch 2, batch 3
    a, b = (load_checkpoint(result.run_dir / "checkpoints" / "last.pt") for result in (whole, resumed))
    assert a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["vocabulary"] == b["vocabulary"] and a["step"] == b["step"] == 8
    states = [[state["exp_avg"] for state in c["optimizer"]["state"].values()] for c in (a, b)]
    assert all(torch.equal(x, y) for x, y in zip(*states, strict=True))


def write_vectors(path: Path, words: list[str], size: int, header: bool) -> dict[str, torch.Tensor]:
    """A word2vec (`header`: "count size" first) or GloVe text file of seeded vectors for `words`, and the vectors."""
    generator = torch.Generator().manual_seed(1)
    vectors = {word: torch.randn(size, generator=generator) for word in words}
    lines = [f"{len(words)} {size}"] if header else []
    lines += [" ".join([word, *(f"{value:.6f}" for value in vector.tolist())]) for word, vector in vectors.items()]
    path.write_text("\n".join(lines) + "\n")
    return {word: torch.tensor([float(f"{value:.6f}") for value in vector.tolist()])
            for word, vector in vectors.items()}


@pytest.mark.parametrize(("embedding", "header"), [("static", True), ("non-static", False)])
def test_pretrained_vectors_load_and_static_ones_stay_frozen(tmp_path, embedding, header):
    manifest = write_csv(tmp_path / "s.csv", corpus(20))
    written = [*WORDS["food"], *WORDS["sports"], "the", "Today"]  # "Today" stands for today: cased, as word2vec's
    vectors = write_vectors(tmp_path / "vectors.txt", [*written, "unrelated"], 32, header)
    result = zoo.train(config(tmp_path, manifest, f"model.embedding={embedding}",
                              f"model.vectors={tmp_path / 'vectors.txt'}", "train.epochs=2"), quiet=True)
    state = read_state(result.run_dir / "checkpoints" / "last.pt", "evaluate")
    weight, index = state.model["embedding.weight"], state.vocabulary.index
    known = [word for word in written if word.lower() in index]  # those of the training split
    assert len(known) >= 12
    given = torch.stack([vectors[word] for word in known])
    trained = torch.stack([weight[index[word.lower()]] for word in known])
    assert torch.equal(trained, given) == (embedding == "static")  # frozen, or fine-tuned away from the vectors
    assert torch.count_nonzero(weight[0]) == 0  # <pad>
    if embedding == "static":
        bound = math.sqrt(3 * given.double().var(correction=0).item())
        others = weight[[number for word, number in index.items() if word not in {w.lower() for w in known}][1:]]
        assert float(others.abs().max()) <= bound and float(others.abs().max()) > bound / 2  # U[-a, a]: theirs


def test_read_vectors_prefers_the_files_own_lowercase_entry(tmp_path):
    vocabulary = Vocabulary(("<pad>", "<unk>", "paris", "dog"), 256, MIN_TOKENS)
    (tmp_path / "v.txt").write_text("Paris 1 1\nparis 2 2\nDOG 3 3\n")
    vectors, found = read_vectors(tmp_path / "v.txt", vocabulary)
    assert found.tolist() == [False, False, True, True] and vectors[2:].tolist() == [[2, 2], [3, 3]]
    (tmp_path / "bad.txt").write_text("dog 1 2\ncat 1\n")
    with pytest.raises(ZooError, match=r"bad.txt line 2 has 1 value, not 2: a word and 2 numbers per line"):
        read_vectors(tmp_path / "bad.txt", vocabulary)
    (tmp_path / "bin.txt").write_bytes(b"2 3\n\x00\x81\xff")
    with pytest.raises(ZooError, match="is not UTF-8 text"):
        read_vectors(tmp_path / "bin.txt", vocabulary)


def test_a_checkpoints_vocabulary_is_read_through_its_checks(run, tmp_path):
    best = run.run_dir / "checkpoints" / "best.pt"
    state = load_checkpoint(best)
    fewer = len(state["vocabulary"]["words"]) - 1
    for change, problem in ((lambda v: {**v, "words": v["words"][:-1]}, f"its vocabulary is {fewer}, but no tensor of "
                                                                         "its weights has as many rows"),
                            (lambda v: {**v, "words": v["words"][1:]}, "its vocabulary.words do not begin with <pad>"),
                            (lambda v: {**v, "tokenizer": "bpe"}, "its vocabulary.tokenizer is 'bpe', not one of "),
                            (lambda v: {**v, "max_tokens": 0}, "its vocabulary.max_tokens is 0, not 1 or more")):
        torch.save({**state, "vocabulary": change(state["vocabulary"])}, tmp_path / "crafted.pt")
        with pytest.raises(ZooError, match=f"crafted.pt is damaged: {problem}"):
            zoo.load(tmp_path / "crafted.pt")


# ---- using the trained network -------------------------------------------------------------------

def zoo_command(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`zoo *args` through the CLI's entry point (zoo.cli.main: its one-line errors, exit code 2), in this process:
    (exit code, stdout, stderr)."""
    from zoo.cli import main

    monkeypatch.setattr("sys.argv", ["zoo", *args])
    with pytest.raises(SystemExit) as done:
        main()
    captured = capsys.readouterr()
    return done.value.code or 0, captured.out, captured.err


def test_zoo_predict_text_answers_with_the_trained_labels(run, tmp_path, monkeypatch, capsys):
    (tmp_path / "lines.txt").write_text("Spicy soup at the bakery\n\nA storm and wind today\n")
    code, out, err = zoo_command(monkeypatch, capsys, "predict", str(run.run_dir), "--text",
                                 "The striker scored a goal for the team", "--text-file", str(tmp_path / "lines.txt"),
                                 "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert [row["text"] for row in report["predictions"]] == ["The striker scored a goal for the team",
                                                              "Spicy soup at the bakery", "A storm and wind today"]
    assert [row["labels"] for row in report["predictions"]] == [["sports"], ["food"], ["weather"]]
    code, out, err = zoo_command(monkeypatch, capsys, "predict", str(run.run_dir), "--text", "rain", "-k", "1")
    assert code == 0 and out.splitlines()[2].startswith("rain ") and "weather" in out.splitlines()[2]
    assert zoo_command(monkeypatch, capsys, "predict", str(run.run_dir), "--text", "  ") == (
        2, "", "error: --text: the sentence is empty; give the words to classify\n")
    chosen = zoo.load(run.run_dir).predict(["A storm and wind", "zebra quagga"], coverage=0.9)  # calibrated sets
    assert chosen[0].set[0] == "weather" and chosen[1].unfamiliar  # no word it knows: unfamiliar by its energy


def assert_exported_answers_as_the_checkpoint(run, format: str) -> None:
    from zoo.inference.export import export_checkpoint

    sentences = ["rain", "Spicy soup", "the coach saw the league news today and it was very really about the match",
                 "zebra"]
    checkpoint = zoo.load(run.run_dir)
    expected = torch.cat([checkpoint.outputs(batch) for batch in checkpoint.batches(sentences, 2)])
    report = export_checkpoint(run.run_dir, format)
    assert report.top1_agreement == 1.0 and report.inputs == "test sentences of text"
    exported = zoo.load(report.path)
    assert type(exported).__name__ == "TextPredictor" and exported.vocabulary == checkpoint.vocabulary
    answers = torch.cat([exported.outputs(batch) for batch in exported.batches(sentences, 2)])  # L 5 and 15
    assert torch.allclose(answers, expected, atol=1e-5)
    assert [p.label for p in exported.predict(sentences)] == [p.label for p in checkpoint.predict(sentences)]


def test_the_safetensors_export_answers_as_the_checkpoint(run):
    assert_exported_answers_as_the_checkpoint(run, "safetensors")


@pytest.mark.slow  # torch's ONNX exporter: 8 s, 13 s in a fresh process
def test_the_onnx_export_answers_as_the_checkpoint_at_any_sentence_length(run):
    assert_exported_answers_as_the_checkpoint(run, "onnx")


def test_zoo_evaluate_measures_a_new_manifest_with_the_runs_vocabulary(run, tmp_path):
    from zoo.evaluation.evaluate import evaluate_checkpoint

    rows = corpus(10, seed=7, noise=0.0)
    manifest = write_jsonl(tmp_path / "new.jsonl", rows)
    report = evaluate_checkpoint(run.run_dir, overrides=[f"data.manifest={manifest}"], device="cpu", save=False)
    assert report.metrics.count == len(rows) and report.metrics.accuracy >= 0.85


def test_picture_tools_refuse_a_text_network_in_one_line(run, tmp_path):
    from PIL import Image

    from zoo.inference.explain import explain

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(ZooError, match=r"trained on sentences \(data.name text\), not on pictures: zoo explain"):
        explain(run.run_dir, [str(tmp_path / "a.png")])
    with pytest.raises(ZooError, match="trained on sentences .* give it sentences: zoo predict SOURCE --text"):
        zoo.predict_files(run.run_dir, [str(tmp_path / "a.png")])
    with pytest.raises(ZooError, match="token ids run from 0 to"):
        zoo.load(run.run_dir).predict(torch.full((1, 6), 10**6))


def test_serve_and_report_say_what_a_text_network_is(run):
    """zoo serve takes pictures: a text run is refused as it starts, in one line; the run's report does not call
    TextCNN's convolutions absent."""
    pytest.importorskip("fastapi")
    from zoo.inference.serve import serve
    from zoo.present.report import filters_html

    with pytest.raises(ZooError, match=r"is a text network \(it reads sentences\) and zoo serve takes pictures; "
                                       r"classify sentences with zoo predict SOURCE --text"):
        serve(run.run_dir, port=0)
    assert "Not drawn: its convolutions slide over sentences" in filters_html(zoo.load(run.run_dir).model)
