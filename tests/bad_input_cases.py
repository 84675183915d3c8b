"""The bad-input cases of docs/reliability.md ("Bad input"), and the runner that puts each through the real CLI.

Each case is a `zoo` command line, the files it needs (made by `setup` in the case's own empty folder, which is
also the working directory, so relative paths such as the default train.output_dir `runs` land there), and a
fragment of the one line it must print. tests/test_bad_input.py runs them all; scripts/bad_input_table.py
prints the table the docs hold.

`run_zoo` runs `zoo.cli.run` (the `zoo` console script's and `python -m zoo`'s entry point) in a fresh process,
forked from a server that imported torch and zoo once, so a case costs its own work and not the 3 to 4 s of
starting Python and importing torch: `sys.argv`, the working directory, stdout, stderr (file descriptors 1 and
2) and the exit code are the child's own, and an uncaught exception prints its traceback and exits 1, as in
`python -m zoo`. test_bad_input.py checks once that the two agree.

    python scripts/bad_input_table.py    # the table, to paste into docs/reliability.md
"""

from __future__ import annotations

import io
import multiprocessing
import os
import shlex
import struct
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datafiles import damage, write_imagefolder

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/lenet5_digits.yaml"  # the case folder links configs/ to the repository's
ANOMALY = "configs/autoencoder_anomaly.yaml"
CHECKPOINT = "lenet5.pt"  # a real checkpoint (module fixture), copied into the folders of the cases that use it
PRELOAD = ["zoo.cli", "zoo.models", "zoo.training", "zoo.evaluation.evaluate", "zoo.data", "torchvision",
           "sklearn.datasets", "safetensors.torch", "tqdm"]  # what the commands import lazily


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def _child(args: list[str], cwd: str, out: str, err: str, path: list[str]) -> None:
    sys.path[:] = path  # absolute: imports after the chdir still find this checkout's zoo
    os.chdir(cwd)
    for fd, name in ((1, out), (2, err)):
        handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
    sys.argv = ["zoo", *args]
    from zoo.cli import run

    run()


def run_zoo(args: list[str], cwd: Path) -> Result:
    """`zoo *args` in `cwd` (see the module docstring); stdout and stderr go to files outside `cwd`."""
    # Not tests/helpers.py's run_zoo (a new interpreter per command): this fast path forks from a warm server.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    path = [os.path.abspath(entry) for entry in sys.path]
    with tempfile.TemporaryDirectory(prefix="zoo-bad-input-") as streams:
        out, err = os.path.join(streams, "stdout"), os.path.join(streams, "stderr")
        process = context.Process(target=_child, args=(list(args), str(cwd), out, err, path))
        process.start()
        process.join(300)
        if process.exitcode is None:
            process.kill()
            process.join()
        return Result(process.exitcode, Path(out).read_text(), Path(err).read_text())


@dataclass(frozen=True)
class Case:
    name: str  # the table's first column: what is wrong
    args: tuple[str, ...]  # after `zoo`, run in the case's folder
    message: str  # a fragment of the one line on stderr
    setup: Callable[[Path, Path], None] | None = None  # (case folder, the real checkpoint) -> files the case needs
    given: str = ""  # what setup made, for the table
    skip: Callable[[], str | None] = field(default=lambda: None)  # why it cannot be run on this machine, or None

    def prepare(self, work: Path, checkpoint: Path) -> None:
        """The case's folder as the command finds it: configs/ (linked) and what setup makes."""
        link_configs(work)
        if self.setup is not None:
            self.setup(work, checkpoint)

    def row(self, line: str) -> str:
        """The table's row, with `line` (what the command printed) as its message."""
        given = f" ({self.given})" if self.given else ""
        return f"| {self.name}{given} | {_code('zoo ' + shlex.join(self.args))} | {_code(line)} |"


HEADER = "| case | command (in a folder holding what the case names) | message, as printed on stderr |\n|---|---|---|"


def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`"


def link_configs(work: Path) -> None:
    """work/configs is the repository's: commands name configs/lenet5_digits.yaml as a user in the repository would."""
    (work / "configs").symlink_to(ROOT / "configs")


def make_checkpoint(work: Path) -> Path:
    """A real lenet5 checkpoint: `zoo train` on digits for 2 steps, in `work` (made here)."""
    work.mkdir(parents=True, exist_ok=True)
    link_configs(work)
    result = run_zoo(train("train.epochs=1", "train.max_steps_per_epoch=2"), work)
    if result.returncode != 0:
        raise RuntimeError(f"the source checkpoint's training failed:\n{result.stderr}")
    (best,) = work.glob("runs/lenet5_digits/*/checkpoints/best.pt")
    return best


def train(*sets: str, command: str = "train", config: str = CONFIG) -> tuple[str, ...]:
    return (command, "--config", config, *(arg for item in sets for arg in ("--set", item)))


def finetune(source: str, *sets: str) -> tuple[str, ...]:
    return train(f"finetune.source={source}", *sets, command="finetune")


# ---- setups: they write in the case folder, before its snapshot ---------------------------------

def photos(counts: dict[str, int]) -> Callable[[Path, Path], None]:
    def setup(work: Path, checkpoint: Path) -> None:
        (work / "photos").mkdir()
        write_imagefolder(work / "photos", counts, size=(12, 10))  # a count of 0: an empty class folder

    return setup


def unreadable_class(work: Path, checkpoint: Path) -> None:
    photos({"cat": 2, "dog": 2})(work, checkpoint)
    for path in (work / "photos" / "dog").iterdir():
        damage(path, "noise")


def copy_of(transform: Callable[[bytes], bytes], name: str = CHECKPOINT) -> Callable[[Path, Path], None]:
    def setup(work: Path, checkpoint: Path) -> None:
        (work / name).write_bytes(transform(checkpoint.read_bytes()))

    return setup


def flipped(data: bytes) -> bytes:
    """16 bytes inverted in the middle of the first weight tensor (the zip member data/0), which torch.load reads
    without checking the CRC-32 the archive records for it."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        member = next(info for info in archive.infolist() if info.filename.endswith("/data/0"))
    name_length, extra_length = struct.unpack_from("<HH", data, member.header_offset + 26)  # the local header's
    middle = member.header_offset + 30 + name_length + extra_length + member.file_size // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 16]) + data[middle + 16:]


def saved(make: Callable[[Path], object], name: str) -> Callable[[Path, Path], None]:
    """torch.save(make(checkpoint)) into name (a .safetensors name: safetensors' save_file)."""
    def setup(work: Path, checkpoint: Path) -> None:
        value = make(checkpoint)
        if name.endswith(".safetensors"):
            from safetensors.torch import save_file

            save_file(value, work / name)
        else:
            torch.save(value, work / name)

    return setup


def lenet5_weights(checkpoint: Path) -> dict:
    return torch.load(checkpoint, weights_only=True)["model"]


class RunsCode:
    """Unpickled, this would call os.system: what a malicious 'checkpoint' holds."""

    def __reduce__(self):
        return os.system, ("echo this should never run",)


def uncalibrated(checkpoint: Path) -> dict:
    """The checkpoint as zoo saved it before it fitted calibrations: no `calibration`."""
    state = {key: value for key, value in torch.load(checkpoint, weights_only=True).items() if key != "calibration"}
    return {**state, "config": {key: value for key, value in state["config"].items() if key != "calibration"}}


def code_in_pickle(checkpoint: Path) -> dict:
    return {"model": lenet5_weights(checkpoint), "hook": RunsCode()}


def split_folders(*names: str) -> Callable[[Path, Path], None]:
    """photos/<name>/{cat,dog}/ for each split folder name."""
    def setup(work: Path, checkpoint: Path) -> None:
        for name in names:
            write_imagefolder(work / "photos" / name, {"cat": 2, "dog": 2}, size=(12, 10))

    return setup


def text_file(name: str, text: str = "not a picture, not a network\n") -> Callable[[Path, Path], None]:
    def setup(work: Path, checkpoint: Path) -> None:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)

    return setup


def with_checkpoint(*more: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    def setup(work: Path, checkpoint: Path) -> None:
        (work / CHECKPOINT).write_bytes(checkpoint.read_bytes())
        for step in more:
            step(work, checkpoint)

    return setup


def listed(text: str | bytes, name: str = "labels.csv", damaged: str = "") -> Callable[[Path, Path], None]:
    """photos/{cat,dog}/{0,1}.png and photos/<name> holding `text` (a manifest), `damaged`'s images made noise."""
    def setup(work: Path, checkpoint: Path) -> None:
        write_imagefolder(work / "photos", {"cat": 2, "dog": 2}, size=(12, 10))
        manifest = work / "photos" / name
        if isinstance(text, bytes):
            manifest.write_bytes(text)
        else:
            manifest.write_text(text)
        for path in (work / "photos" / damaged).glob("*.png") if damaged else ():
            damage(path, "noise")

    return setup


MANIFEST = ("data.name=manifest", "data.manifest=photos/labels.csv")
TEXT_CONFIG = "configs/textcnn_sentences.yaml"
SENTENCES = ("data.manifest=sentences.csv",)
LISTED = "path,label\ncat/0.png,cat\ncat/1.png,cat\ndog/0.png,dog\ndog/1.png,dog\n"


def damaged_class(name: str) -> Callable[[Path, Path], None]:
    def setup(work: Path, checkpoint: Path) -> None:
        for path in (work / "photos" / name).iterdir():
            damage(path, "noise")

    return setup


RUN = "lenet5_digits/20260101-000000"  # a run folder, not under runs/ (which every case must leave absent)


def run_folder(name: str) -> Callable[[Path, Path], None]:
    """out/lenet5_digits/<name>: a copy of the real checkpoint's finished run, as train.run_id=<name> finds it."""
    def setup(work: Path, checkpoint: Path) -> None:
        import shutil

        shutil.copytree(checkpoint.parents[1], work / "out" / "lenet5_digits" / name)

    return setup


def unfinished(run: str) -> Callable[[Path, Path], None]:
    """The run at `run` (made by an earlier setup) without its metrics.json: stopped before its end."""
    def setup(work: Path, checkpoint: Path) -> None:
        (work / run / "metrics.json").unlink()

    return setup


def later_last_pt(work: Path, checkpoint: Path) -> None:
    """RUN of 2 epochs whose best.pt is epoch 1's (the real checkpoint) and whose last.pt is epoch 2's."""
    import yaml

    folder = work / RUN / "checkpoints"
    folder.mkdir(parents=True)
    state = torch.load(checkpoint, weights_only=True)
    state["config"]["train"]["epochs"] = 2
    (work / RUN / "config.yaml").write_text(yaml.safe_dump(state["config"]))
    torch.save(state, folder / "best.pt")
    torch.save({**state, "epoch": 2, "step": 2 * state["step"]}, folder / "last.pt")


def no_cuda() -> str | None:
    return "this machine has CUDA" if torch.cuda.is_available() else None


def no_mps() -> str | None:
    return "this machine has MPS" if torch.backends.mps.is_available() else None


def no_proc() -> str | None:
    return None if Path("/proc/self").is_dir() else "no /proc here"


def crafted(**fields: object) -> Callable[[Path, Path], None]:
    """CHECKPOINT: the real checkpoint with `fields` changed (a callable: made from the checkpoint's dict)."""
    def make(checkpoint: Path) -> dict:
        state = torch.load(checkpoint, weights_only=True)
        return {**state, **{key: value(state) if callable(value) else value for key, value in fields.items()}}

    return saved(make, CHECKPOINT)


def exported(**strings: str) -> Callable[[Path, Path], None]:
    """model.safetensors: the real checkpoint as zoo export writes it, with `strings` over its zoo metadata."""
    def setup(work: Path, checkpoint: Path) -> None:
        from safetensors.torch import save_file

        from zoo.inference.load import Metadata, open_checkpoint

        state, config, model = open_checkpoint(checkpoint)
        save_file(model.state_dict(), work / "model.safetensors",
                  metadata={**Metadata.of_checkpoint(state, config).to_strings(), **strings})

    return setup


def nan_weights(state: dict) -> dict:
    return {key: tensor * float("nan") if tensor.is_floating_point() else tensor
            for key, tensor in state["model"].items()}


def untrained_autoencoder(checkpoint: Path) -> dict:
    """ANOMALY's network as it starts, saved as zoo saves a checkpoint."""
    from zoo.checkpoint import Normalization, TrainingState
    from zoo.config import load_config

    config = load_config(ROOT / ANOMALY)
    return TrainingState.of_network(config.model.build(0, 1), config.to_dict(), ["0"],
                                    Normalization((0.0,), (1.0,), 28, 1)).to_dict()


def offline_mnist(state: dict) -> dict:
    """The checkpoint's config with its data moved to MNIST that is not downloaded here."""
    data = {**state["config"]["data"], "name": "mnist", "root": "nowhere", "download": False}
    return {**state["config"], "data": data}


CASES = [
    # -- the config: keys, types, values, names --
    Case("unknown key, misspelled", train("optimizer.momentun=0.8"),
         "optimizer.momentun: unknown key; did you mean optimizer.momentum?"),
    Case("unknown section, misspelled", train("optimiser.lr=0.01"), "optimiser: unknown key; did you mean optimizer?"),
    Case("misspelled key in the YAML file", train(config="typo.yaml"), "traing: unknown key; did you mean train?",
         text_file("typo.yaml", "model: {name: lenet5}\ndata: {name: digits}\ntraing: {epochs: 3}\n"),
         "typo.yaml has a section traing:"),
    Case("wrong type: text for a number", train("data.batch_size=many"),
         "data.batch_size: input should be a valid integer"),
    Case("wrong type: not true or false", train("data.augment=maybe"), "data.augment: input should be a valid boolean"),
    Case("wrong type: a value for a section", train("optimizer=0.01"),
         "optimizer: must be a section of keys (name, lr,"),
    Case("zero learning rate", train("optimizer.lr=0"), "optimizer.lr: input should be greater than 0 (got 0)"),
    Case("negative learning rate, 1e-3 style", train("optimizer.lr=-1e-3"),
         "optimizer.lr: input should be greater than 0"),
    Case("zero batch size", train("data.batch_size=0"), "data.batch_size: input should be greater than 0"),
    Case("negative epochs", train("train.epochs=-5"), "train.epochs: input should be greater than 0"),
    Case("unknown model", train("model.name=resnet19"), "model.name: unknown model 'resnet19'; did you mean resnet18"),
    Case("unknown model argument", train("model.depth=3"), "lenet5 takes no argument 'depth'"),
    Case("unknown data set", train("data.name=cifar"), "data.name: unknown name 'cifar'; choose one of"),
    Case("unknown optimizer", train("optimizer.name=adma"), "optimizer.name: unknown name 'adma'; choose one of"),
    Case("unknown scheduler", train("scheduler.name=cosin"), "did you mean cosine?"),
    Case("unknown init", train("init=kaiming"), "init: unknown init 'kaiming'; choose one of default"),
    Case("unknown device", train("train.device=gpu"), "train.device: must be auto, cpu, cuda, cuda:N or mps"),
    Case("--set without a value", train("optimizer.lr"), "--set 'optimizer.lr': write key.path=value"),
    Case("config file not found", train(config="configs/lenet5.yaml"), "config file 'configs/lenet5.yaml' not found"),
    Case("config file not YAML", train(config="broken.yaml"), "broken.yaml: not valid YAML at line 3",
         text_file("broken.yaml", "model: {name: lenet5}\ndata: [digits\n"), "broken.yaml has an unclosed ["),
    Case("a key written twice in the YAML file", train(config="twice.yaml"),
         "twice.yaml: optimizer is written twice (lines 3 and 4); keep one",
         text_file("twice.yaml", "model: {name: lenet5}\ndata: {name: digits}\noptimizer: {lr: 0.01}\n"
                                 "optimizer: {weight_decay: 0.001}\n"), "two optimizer: sections"),
    # -- the data --
    Case("missing data directory", train("data.name=imagefolder", "data.root=photos"), "imagefolder: photos not found"),
    Case("missing data set files, offline", train("data.name=mnist", "data.download=false"),
         "MNIST not found under data/MNIST/raw"),
    Case("empty ImageFolder", train("data.name=imagefolder", "data.root=photos"),
         "Couldn't find any class folder in photos", photos({}), "photos/ is empty"),
    Case("a class folder with no images", train("data.name=imagefolder", "data.root=photos"),
         "Found no valid file for the classes dog. Supported extensions are", photos({"cat": 2, "dog": 0}),
         "photos/dog/ is empty"),
    Case("a class folder whose images are all unreadable", train("data.name=imagefolder", "data.root=photos"),
         "Found no valid file for the classes dog: 2 unreadable image file(s)", unreadable_class,
         "photos/dog/ holds two PNGs of random bytes"),
    Case("class index out of range", train("data.classes=[0,12]"), "data.classes: 12 is not a class index of digits"),
    Case("one class kept", train("data.classes=[3]"), "data.classes keeps 1 class (3); a classifier needs at least 2"),
    Case("one class folder", train("data.name=imagefolder", "data.root=photos"),
         "imagefolder: photos holds 1 class (defect); a classifier needs at least 2", photos({"defect": 4}),
         "photos/ holds one class folder"),
    Case("split folders under names zoo does not read", train("data.name=imagefolder", "data.root=photos"),
         "photos: test_set/, train_set/ look like split folders, but zoo reads splits named train/training, "
         "val/valid/validation, test/testing", split_folders("train_set", "test_set"),
         "photos/train_set/, photos/test_set/"),
    Case("two folders for one split", train("data.name=imagefolder", "data.root=photos"),
         "photos has both Train/ and train/ as its train split; keep one", split_folders("train", "Train"),
         "photos/train/ and photos/Train/"),
    Case("manifest not found", train(*MANIFEST), "manifest: photos/labels.csv not found; set data.manifest to a .csv "
         "or .jsonl file of path and label"),
    Case("manifest neither CSV nor JSON lines", train("data.name=manifest", "data.manifest=photos/labels.txt"),
         "manifest: photos/labels.txt: not a .csv or .jsonl file", listed(LISTED, "labels.txt"),
         "photos/labels.txt, a CSV by another name"),
    Case("empty manifest", train(*MANIFEST), "manifest: photos/labels.csv is empty; write a header (path,label)",
         listed(""), "photos/labels.csv is empty"),
    Case("manifest with a header but no rows", train(*MANIFEST), "manifest: photos/labels.csv line 1: a header but no "
         "rows", listed("path,label\n"), "photos/labels.csv holds path,label"),
    Case("manifest without a path column", train(*MANIFEST), "manifest: photos/labels.csv line 1: no path column "
         "(its columns: id, label); rename id to path", listed(LISTED.replace("path,", "id,", 1)),
         "Kaggle's id,label header"),
    Case("manifest without a label column", train(*MANIFEST), "manifest: photos/labels.csv line 1: no label column "
         "(its columns: path, breed); name the class column label", listed(LISTED.replace(",label", ",breed", 1)),
         "a path,breed header"),
    Case("manifest line that is not JSON", train("data.name=manifest", "data.manifest=photos/labels.jsonl"),
         "manifest: photos/labels.jsonl line 2: not valid JSON (Expecting property name enclosed in double quotes",
         listed('{"path": "cat/0.png", "label": "cat"}\n{"path": "dog/0.png", "label": "dog",}\n', "labels.jsonl"),
         "a trailing comma on line 2"),
    Case("manifest line that is not a JSON object", train("data.name=manifest", "data.manifest=photos/labels.jsonl"),
         "manifest: photos/labels.jsonl line 1: a JSON list, not an object",
         listed('["cat/0.png", "cat"]\n', "labels.jsonl"), "a list on line 1"),
    Case("manifest row whose image is missing", train(*MANIFEST), "manifest: photos/labels.csv line 6: no file "
         "dog/2.png (looked for photos/dog/2.png: paths are relative to the manifest's folder)",
         listed(LISTED + "dog/2.png,dog\n"), "line 6 names dog/2.png, which is not there"),
    Case("manifest row without a label", train(*MANIFEST), "manifest: photos/labels.csv line 3: no label; give every "
         "image its class", listed(LISTED.replace("cat/1.png,cat", "cat/1.png,")), "line 3 is cat/1.png,"),
    Case("manifest row with an unknown split", train(*MANIFEST), "manifest: photos/labels.csv line 5: unknown split "
         "'dev'; give train/training, val/valid/validation, test/testing (any case)",
         listed("path,label,split\ncat/0.png,cat,\ncat/1.png,cat,test\ndog/0.png,dog,\ndog/1.png,dog,dev\n"),
         "line 5's split is dev"),
    Case("manifest listing one image with two labels", train(*MANIFEST), "manifest: photos/labels.csv lines 2 and 6 "
         "list the same image (cat/0.png) with different labels (cat and dog); keep one row",
         listed(LISTED + "cat/0.png,dog\n"), "cat/0.png as cat and as dog"),
    Case("manifest listing one image in two splits", train(*MANIFEST), "manifest: photos/labels.csv lines 2 and 6 "
         "list the same image (cat/0.png) with different splits (train and test); keep one row",
         listed(LISTED.replace("label", "label,split") + "cat/0.png,cat,test\n"), "cat/0.png as train and as test"),
    Case("manifest class whose images are all unreadable", train(*MANIFEST), "manifest: photos/labels.csv: the class "
         "dog has no readable image to train on (line 4: dog/0.png is unreadable", listed(LISTED, damaged="dog"),
         "photos/dog/ holds two PNGs of random bytes"),
    Case("manifest cell of two labels, task classification", train(*MANIFEST), "manifest: photos/labels.csv line 5: "
         "the label 'dog;cat' holds data.label_delimiter ';'; task classification takes one label per image: set "
         "task: multilabel", listed(LISTED.replace("dog/1.png,dog", "dog/1.png,dog;cat")),
         "line 5 is dog/1.png,dog;cat"),
    Case("manifest not UTF-8", train(*MANIFEST), "manifest: photos/labels.csv line 3: not UTF-8 text (byte 0xe9); "
         "save it as UTF-8", listed(LISTED.encode().replace(b"cat/1.png,cat", b"cat/1.png,caf\xe9")),
         "a Latin-1 e-acute on line 3"),
    # -- sentences: data.name text (zoo.data.text), zoo predict --text --
    Case("text manifest without a text column", train(*SENTENCES, config=TEXT_CONFIG), "manifest: sentences.csv line "
         "1: no text column (its columns: sentence, label); rename sentence to text",
         text_file("sentences.csv", "sentence,label\nA fine film,pos\n"), "a sentence,label header"),
    Case("text manifest without a label column", train(*SENTENCES, config=TEXT_CONFIG), "manifest: sentences.csv line "
         "1: no label column (its columns: text, polarity); rename polarity to label",
         text_file("sentences.csv", "text,polarity\nA fine film,pos\n"), "a text,polarity header"),
    Case("empty text manifest", train(*SENTENCES, config=TEXT_CONFIG), "manifest: sentences.csv is empty; write a "
         "header (text,label) and a row per sentence", text_file("sentences.csv", ""), "sentences.csv is empty"),
    Case("text manifest row without a sentence", train(*SENTENCES, config=TEXT_CONFIG), "manifest: sentences.csv line "
         "3: no text; give each row its sentence, or remove the row",
         text_file("sentences.csv", "text,label\nA fine film,pos\n,neg\n"), "line 3 is ,neg"),
    Case("an option for pictures given to a text run", train(*SENTENCES, "data.augment=true", config=TEXT_CONFIG),
         "--set data: augment is for pictures; data.name text gives the network sentences as token ids"),
    Case("a text network given pictures", train("model.name=textcnn"), "model textcnn reads sentences as token "
         "ids; set data.name: text"),
    Case("sentences given to a network of pictures", ("predict", CHECKPOINT, "--text", "a fine day"),
         f"--text: {CHECKPOINT} classifies pictures, not sentences; give it image files", with_checkpoint()),
    Case("an empty sentence to predict", ("predict", CHECKPOINT, "--text", ""),
         "--text: the sentence is empty; give the words to classify", with_checkpoint()),
    Case("an empty file of sentences to predict", ("predict", CHECKPOINT, "--text-file", "sentences.txt"),
         "--text-file sentences.txt holds no sentences (blank lines are skipped)",
         with_checkpoint(text_file("sentences.txt", "\n \n")), "sentences.txt holds blank lines"),
    Case("task multilabel on a data set of one label per image", train("task=multilabel"),
         f"{CONFIG} with --set task=multilabel: task multilabel: data.name digits has one label per image; multilabel "
         "reads data.name: manifest, whose label cells hold several"),
    Case("task multilabel with Mixup", train(*MANIFEST, "task=multilabel", "data.augment={mixup_alpha: 0.2}"),
         f"{CONFIG} with --set {' '.join(MANIFEST)} task=multilabel data.augment={{mixup_alpha: 0.2}}: task "
         "multilabel: data.augment.mixup_alpha and cutmix_alpha mix one label per image; set them to 0"),
    Case("task reconstruction with a classifier", train("task=reconstruction"),
         f"{CONFIG} with --set task=reconstruction: task reconstruction: lenet5 is a classifier; an autoencoder "
         "rebuilds the picture: autoencoder, conv_autoencoder or deep_conv_autoencoder (zoo list)"),
    Case("an autoencoder given class weights", train("loss.class_weights=auto", config=ANOMALY),
         f"{ANOMALY} with --set loss.class_weights=auto: task reconstruction: loss.class_weights weighs classes, and "
         "the target is the picture; remove it"),
    Case("an autoencoder's noise on a classifier", train("data.noise=0.3"),
         f"{CONFIG} with --set data.noise=0.3: data.noise is read only with task: reconstruction (a denoising "
         "autoencoder); remove it"),
    Case("an autoencoder's noise above 1", train("data.noise=3", config=ANOMALY),
         "--set data.noise: input should be less than or equal to 1 (got 3)"),
    Case("an autoencoder on normalized pixels", train("data.normalize=true", config=ANOMALY),
         "task reconstruction: data.normalize: an autoencoder rebuilds [0, 1] pixels; set data.normalize: false"),
    Case("abnormal pictures for a classifier", ("evaluate", CHECKPOINT, "--abnormal-classes", "7"),
         f"--abnormal-classes: {CHECKPOINT} is a classification model; abnormal pictures are for an autoencoder (task "
         "reconstruction)", with_checkpoint()),
    Case("abnormal classes that are no indices", ("evaluate", CHECKPOINT, "--abnormal-classes", "seven"),
         "--abnormal-classes 'seven': give distinct class indices, 0 or more, separated by commas: 7 or 5,7",
         with_checkpoint()),
    Case("batches of one image where batch norm cannot train",
         train("model.name=resnet18", "data.name=synthetic", "data.input_size=32", "data.synthetic_size=8",
               "data.batch_size=1"),
         "data.batch_size 1: resnet18's batch norm layer4.0.bn1 sees one value per channel in training at 32x32 "
         "inputs"),
    Case("input too small for the model", train("model.name=alexnet", "data.name=synthetic", "data.input_size=32"),
         "alexnet needs inputs of at least 67x67, got 32x32"),
    Case("more classes than the model's head", train("model.num_classes=5"),
         "model.num_classes is 5 but digits has 10 classes"),
    # -- where it runs, where it writes --
    Case("cuda on a machine without it", train("train.device=cuda"),
         "train.device is 'cuda' but this machine has no CUDA device; use device: auto or cpu", skip=no_cuda),
    Case("mps on a machine without it", train("train.device=mps"),
         "train.device is 'mps' but MPS is not available here", skip=no_mps),
    Case("output dir is a file", train("train.output_dir=runs"),
         "cannot create runs/lenet5_digits: runs is a file, not a folder", text_file("runs", "notes\n"),
         "runs is a file"),
    Case("output dir not writable", train("train.output_dir=/proc/zoo-runs"),
         "cannot create /proc/zoo-runs/lenet5_digits", given="procfs: not even root may create a folder there",
         skip=no_proc),
    # -- checkpoints --
    Case("checkpoint not found", ("evaluate", CHECKPOINT), f"checkpoint '{CHECKPOINT}' not found"),
    Case("empty checkpoint", ("evaluate", CHECKPOINT),
         f"{CHECKPOINT} is damaged or not a PyTorch checkpoint (an empty file)", copy_of(lambda data: b""), "0 bytes"),
    Case("truncated checkpoint", ("evaluate", CHECKPOINT), f"{CHECKPOINT} is damaged or not a PyTorch checkpoint",
         copy_of(lambda data: data[: len(data) // 2]), "the first half of a real one"),
    Case("bit-flipped checkpoint", ("evaluate", CHECKPOINT), f"{CHECKPOINT} is damaged (Bad CRC-32", copy_of(flipped),
         "16 bytes inverted in its first weight tensor"),
    Case("foreign file: text", ("evaluate", "notes.pt"), "notes.pt is damaged or not a PyTorch checkpoint",
         text_file("notes.pt", "These are my notes, not weights.\n"), "notes.pt holds a line of text"),
    Case("foreign file: a pickle that is not a checkpoint", ("evaluate", "plain.pt"),
         "plain.pt is not a zoo checkpoint", saved(lambda checkpoint: {"epoch": 3, "loss": 0.25}, "plain.pt"),
         "torch.save of a dict of numbers"),
    Case("foreign file: weights and config but nothing else", ("evaluate", "bare.pt"),
         "bare.pt is not a zoo checkpoint",
         saved(lambda checkpoint: {key: torch.load(checkpoint, weights_only=True)[key] for key in ("model", "config")},
               "bare.pt"),
         "no num_classes, no normalization"),
    Case("foreign file: a pickle that would run code", ("evaluate", "old.pt"),
         "old.pt was refused: it needs the unsafe global posix.system", saved(code_in_pickle, "old.pt"),
         "weights beside an object whose unpickling calls os.system"),
    Case("foreign file: safetensors of other keys", finetune("other.safetensors"), "does not fit lenet5",
         saved(lambda checkpoint: {"encoder.weight": torch.zeros(2, 2)}, "other.safetensors"),
         "one tensor, encoder.weight"),
    Case("damaged safetensors", finetune("weights.safetensors"),
         "weights.safetensors is damaged or not a safetensors file", text_file("weights.safetensors", "not really\n"),
         "a line of text"),
    Case("checkpoint of another architecture: fine-tune", finetune(CHECKPOINT, "model.name=mnist_cnn"),
         f"finetune.source {CHECKPOINT} holds a lenet5, not a mnist_cnn", with_checkpoint(), "a lenet5 checkpoint"),
    Case("state_dict of another architecture: fine-tune", finetune("lenet5.pth", "model.name=mnist_cnn"),
         "state_dict lenet5.pth does not fit mnist_cnn", saved(lenet5_weights, "lenet5.pth"), "lenet5's state_dict"),
    Case("checkpoint of another architecture: evaluate", ("evaluate", CHECKPOINT, "--set", "model.name=mnist_cnn"),
         f"{CHECKPOINT} does not fit mnist_cnn", with_checkpoint(), "a lenet5 checkpoint"),
    Case("class count that does not fit the checkpoint",
         ("evaluate", CHECKPOINT, "--data", "imagefolder", "--data-root", "photos"),
         f"the data has classes {CHECKPOINT} does not predict: cat (11 classes for its 10); it predicts 0, 1, 2",
         with_checkpoint(photos({**{str(i): 1 for i in range(10)}, "cat": 1})),
         "a 10-class digits checkpoint; photos/ has 0/ to 9/ and cat/"),
    Case("a folder for a data set that reads no files", ("evaluate", CHECKPOINT, "--data-root", "photos"),
         "--data-root photos: digits reads no files; to evaluate on a folder of images add --data imagefolder",
         with_checkpoint(photos({"3": 1, "cat": 1})), "a digits checkpoint; photos/ holds class folders; no --data"),
    Case("unknown split", ("evaluate", CHECKPOINT, "--split", "validation"), "unknown split 'validation'",
         with_checkpoint()),
    Case("a class folder the checkpoint does not predict",
         ("evaluate", CHECKPOINT, "--data", "imagefolder", "--data-root", "photos"),
         f"the data has classes {CHECKPOINT} does not predict: cat; it predicts 0, 1, 2",
         with_checkpoint(photos({"3": 1, "cat": 1})), "a digits checkpoint; photos/ holds 3/ and cat/"),
    Case("evaluate on cuda on a machine without it", ("evaluate", CHECKPOINT, "--device", "cuda"),
         "--device is 'cuda' but this machine has no CUDA device; use --device auto or cpu", with_checkpoint(),
         skip=no_cuda),
    Case("a prediction sets' coverage that is no fraction", ("evaluate", CHECKPOINT, "--coverage", "1.5"),
         "--coverage 1.5: give the share of pictures whose prediction set must hold the true class, a fraction "
         "between 0 and 1 (e.g. 0.9)", with_checkpoint()),
    Case("prediction sets of a checkpoint without a calibration", ("evaluate", "old.pt", "--coverage", "0.9"),
         "--coverage: old.pt has no calibration (trained before zoo fitted one, or with calibration.enabled false); "
         "run zoo calibrate old.pt first", saved(uncalibrated, "old.pt"),
         "a lenet5 checkpoint without its calibration"),
    Case("an unfamiliar folder that is not there", ("evaluate", CHECKPOINT, "--unfamiliar", "photos"),
         "--unfamiliar photos: not found; give a folder of pictures unlike the training data", with_checkpoint()),
    Case("an unfamiliar folder without pictures", ("evaluate", CHECKPOINT, "--unfamiliar", "photos"),
         "--unfamiliar photos: no pictures there; give a folder of pictures unlike the training data",
         with_checkpoint(text_file("photos/notes.txt")), "photos/ holds a text file"),
    # -- resuming --
    Case("resume: nothing there", ("train", "--resume", "runs/lenet5_digits/20260101-000000"),
         "--resume 'runs/lenet5_digits/20260101-000000' not found"),
    Case("resume: a checkpoint without training state", ("train", "--resume", "bare.pt"),
         "bare.pt cannot be resumed: it holds no training state",
         saved(lambda checkpoint: {key: torch.load(checkpoint, weights_only=True)[key] for key in ("model", "config")},
               "bare.pt"),
         "weights and config only"),
    Case("resume: a changed config", ("train", "--resume", CHECKPOINT, "--set", "optimizer.lr=0.01"),
         "the config differs from the checkpoint's: optimizer.lr: 0.05 -> 0.01", with_checkpoint(),
         "a lenet5 checkpoint"),
    Case("resume: a change that cannot take effect", ("train", "--resume", CHECKPOINT, "--set", "data.test_split=0.3",
                                                       "--allow-config-change"),
         "--allow-config-change cannot change data.test_split (0.2 -> 0.3): it changes which images are held out",
         with_checkpoint(), "a lenet5 checkpoint"),
    Case("resume: a finished run", ("train", "--resume", CHECKPOINT),
         f"--resume {CHECKPOINT}: the run is finished, there is nothing left to train (it has done its 1 epoch); "
         f"to train more: zoo train --resume {CHECKPOINT} --set train.epochs=11 --allow-config-change",
         with_checkpoint(), "a lenet5 checkpoint of a finished 1-epoch run"),
    Case("resume: a best.pt behind the run's last.pt", ("train", "--resume", f"{RUN}/checkpoints/best.pt"),
         f"{RUN}/checkpoints/best.pt is at the end of epoch 1 (step 2), behind the run's {RUN}/checkpoints/last.pt at "
         "the end of epoch 2 (step 4): resuming from it would train again over the later epochs", later_last_pt,
         "a 2-epoch run whose best.pt is epoch 1's"),
    Case("train.run_id of a finished run", train("train.output_dir=out", "train.run_id=job1"),
         "train.run_id job1 names a finished run, out/lenet5_digits/job1 (metrics.json); choose another train.run_id "
         "for a new run, or train it further with zoo train --resume out/lenet5_digits/job1 --set train.epochs=N",
         run_folder("job1"), "out/lenet5_digits/job1 holds a finished run"),
    Case("train.run_id naming a folder that is not a run", train("train.output_dir=out", "train.run_id=mine"),
         "train.run_id mine: out/lenet5_digits/mine exists and is not a run zoo began (no launch.json, no checkpoint); "
         "choose another train.run_id, or move that folder", text_file("out/lenet5_digits/mine/notes.txt"),
         "out/lenet5_digits/mine/notes.txt"),
    Case("--allow-config-change without --resume", (*train(), "--allow-config-change"),
         "--allow-config-change goes with --resume; remove it"),
    Case("train with neither a config nor --resume", ("train",), "give a config (zoo train --config"),
    # -- fine-tuning --
    Case("fine-tune without a finetune section", train(command="finetune"), "has no finetune section"),
    Case("fine-tune: freeze up to a module that does not exist", finetune(CHECKPOINT, "finetune.freeze=until:layer9"),
         "finetune.freeze: lenet5 has no module 'layer9'", with_checkpoint(), "a lenet5 checkpoint"),
    Case("fine-tune: strict false that would load almost nothing", finetune("other.pth", "finetune.strict=false"),
         "fits only 0.0% of lenet5's backbone parameters",
         saved(lambda checkpoint: {"encoder.weight": torch.zeros(2, 2)}, "other.pth"), "one tensor, encoder.weight"),
    Case("fine-tune: another tool's checkpoint with its weights under an unknown entry", finetune("tool.pt"),
         "holds no state_dict under a known key",
         saved(lambda checkpoint: {"student": lenet5_weights(checkpoint), "teacher": lenet5_weights(checkpoint)},
               "tool.pt"),
         "lenet5's state_dict under 'student' and 'teacher'"),
    Case("class weights that do not fit the classes", train("loss.class_weights=[1, 2]"),
         "loss.class_weights has 2 weights but the data has 10 classes"),
    Case("a class weight of 0", train("loss.class_weights=[0, 1]"),
         "loss.class_weights: give auto, or one weight above 0"),
    Case("an augmentation policy misspelt", train("data.augment.policy=trivialaugmentwide"),
         "data.augment.policy: unknown policy 'trivialaugmentwide'; choose one of none, randaugment, trivialaugment"),
    Case("RandAugment's magnitude under another policy", train("data.augment={policy: augmix, magnitude: 12}"),
         "data.augment: magnitude is a setting of policy randaugment, and the policy is augmix"),
    Case("a key of data.augment when augment is false", train("data.augment=false", "data.augment.mixup_alpha=0.2"),
         "data.augment is False, not a section; give the section whole, e.g. --set 'data.augment={mixup_alpha: ...}'"),
    Case("an EMA decay of 1: an average that never moves", train("train.ema={decay: 1.0}"),
         "train.ema.decay: input should be less than 1"),
    Case("gradient accumulation over 0 batches", train("train.accumulate_steps=0"),
         "train.accumulate_steps: input should be greater than 0"),
    # -- predicting and exporting --
    Case("predict: a path that does not exist", ("predict", CHECKPOINT, "photos/"),
         "photos/ not found; give image files", with_checkpoint(), "a lenet5 checkpoint"),
    Case("predict: a folder without images", ("predict", CHECKPOINT, "notes/"),
         "no image files in notes/ (only 1 file of other kinds)", with_checkpoint(text_file("notes/read.me")),
         "notes/ holds a text file"),
    Case("predict: no image that can be read", ("predict", CHECKPOINT, "photos/"),
         "none of the 4 image files could be read", with_checkpoint(unreadable_class, damaged_class("cat")),
         "every picture damaged"),
    Case("predict: a source that is not a network", ("predict", "notes.txt", "photos/"),
         "notes.txt is damaged or not a PyTorch checkpoint",
         with_checkpoint(text_file("notes.txt"), photos({"cat": 1})), "notes.txt"),
    Case("predict: unknown torchvision weights", ("predict", "torchvision:ResNet18_Weights.V9", "photos/"),
         "unknown torchvision weights 'ResNet18_Weights.V9'", photos({"cat": 1})),
    Case("predict: a safetensors file zoo did not export", ("predict", "weights.safetensors", "photos/"),
         "weights.safetensors has no zoo metadata", with_checkpoint(saved(lenet5_weights, "weights.safetensors"),
                                                                    photos({"cat": 1})), "lenet5's state_dict"),
    Case("predict: a prediction sets' coverage that is no fraction",
         ("predict", CHECKPOINT, "photos/", "--coverage", "1.5"),
         "--coverage 1.5: give the share of pictures whose prediction set must hold the true class, a fraction "
         "between 0 and 1 (e.g. 0.9)", with_checkpoint(photos({"cat": 1})), "a lenet5 checkpoint"),
    Case("predict: prediction sets of a checkpoint without a calibration",
         ("predict", "old.pt", "photos/", "--coverage", "0.9"),
         "--coverage: old.pt has no calibration to build prediction sets from; run zoo calibrate on its run directory",
         with_checkpoint(saved(uncalibrated, "old.pt"), photos({"cat": 1})),
         "a lenet5 checkpoint without its calibration"),
    Case("calibrate: a file that is no checkpoint", ("calibrate", "notes.txt"),
         "notes.txt is damaged or not a PyTorch checkpoint", text_file("notes.txt"), "notes.txt"),
    Case("predict: top-k of 0", ("predict", CHECKPOINT, "photos/", "--top-k", "0"), "--top-k must be 1 or more",
         with_checkpoint(photos({"cat": 1})), "a lenet5 checkpoint"),
    Case("explain: a layer that does not exist", ("explain", CHECKPOINT, "photos/cat/0.png", "--layer", "layer4"),
         "--layer layer4: lenet5 has no module of that name", with_checkpoint(photos({"cat": 1})),
         "a lenet5 checkpoint"),
    Case("explain: a picture that cannot be read", ("explain", CHECKPOINT, "photos/", "--filters"),
         "photos/dog/0.png cannot be decoded", with_checkpoint(unreadable_class), "two of four pictures damaged"),
    Case("explain: a class that is not one", ("explain", CHECKPOINT, "photos/cat/0.png", "--target", "12"),
         "--target 12: no class has that index", with_checkpoint(photos({"cat": 1})), "a lenet5 checkpoint"),
    Case("explain: an --output that is a file", ("explain", CHECKPOINT, "--filters", "--output", "notes.txt"),
         "--output notes.txt is a file; give a folder for the PNGs", with_checkpoint(text_file("notes.txt")),
         "a lenet5 checkpoint, notes.txt"),
    Case("stylize: a picture that does not exist", ("stylize", "photo.jpg", "starry.jpg"),
         "photo.jpg not found; give the content picture's file"),
    Case("stylize: a picture that cannot be read", ("stylize", "notes.jpg", "notes.jpg"), "notes.jpg cannot be decoded",
         text_file("notes.jpg"), "notes.jpg holds text"),
    Case("stylize: an --output folder that does not exist", ("stylize", "photo.jpg", "starry.jpg", "-o", "out/a.png"),
         "--output out/a.png: the folder out does not exist; create it, or give another"),
    Case("stylize: an --output suffix Pillow cannot write", ("stylize", "photo.jpg", "starry.jpg", "-o", "a.xyz"),
         "--output a.xyz: Pillow cannot write .xyz pictures; name it *.png or *.jpg"),
    Case("stylize: a size under VGG-19's 16 px", ("stylize", "photo.jpg", "starry.jpg", "--size", "8"),
         "--size 8: give the longer side in pixels, 16 to 4096"),
    Case("stylize: a negative weight", ("stylize", "photo.jpg", "starry.jpg", "--style-weight", "-1"),
         "--style-weight -1.0: give a weight of 0 or more"),
    Case("export: an opset the exporter does not write", ("export", CHECKPOINT, "--opset", "11"),
         "--opset 11: torch's exporter writes opset 18 to", with_checkpoint(), "a lenet5 checkpoint"),
    Case("export: a batch size that is not one", ("export", CHECKPOINT, "--batch", "many"),
         "--batch many: give dynamic or a batch size of 1 or more", with_checkpoint(), "a lenet5 checkpoint"),
    Case("export: an unknown format", ("export", CHECKPOINT, "--format", "tflite"),
         "unknown format 'tflite'; choose one of onnx, pt2, safetensors", with_checkpoint(), "a lenet5 checkpoint"),
    Case("export: onto the checkpoint itself",
         ("export", CHECKPOINT, "--format", "safetensors", "--output", CHECKPOINT),
         f"--output {CHECKPOINT} is the checkpoint itself", with_checkpoint(), "a lenet5 checkpoint"),
    Case("export: int8 in another format than ONNX", ("export", CHECKPOINT, "--format", "pt2", "--quantize", "int8"),
         "--quantize int8 writes ONNX (ONNX Runtime's static quantization); --format pt2 has no int8 file: give "
         "--format onnx", with_checkpoint(), "a lenet5 checkpoint"),
    Case("export: a negative --max-drop", ("export", CHECKPOINT, "--quantize", "int8", "--max-drop", "-1"),
         "--max-drop -1.0: give the test top-1 the int8 file may lose, in percentage points, 0 or more",
         with_checkpoint(), "a lenet5 checkpoint"),
    Case("export: int8 of an autoencoder", ("export", "autoencoder.pt", "--quantize", "int8"),
         "--quantize: autoencoder.pt is an autoencoder (task reconstruction); an int8 file is verified by its test "
         "top-1 accuracy", saved(untrained_autoencoder, "autoencoder.pt"), f"{ANOMALY}'s network"),
    Case("export: int8 without the run's test split at hand", ("export", CHECKPOINT, "--quantize", "int8"),
         "an int8 file is verified on the run's test split against its labels: run zoo export where the data "
         "(mnist) is at hand, or export without --quantize", crafted(config=offline_mnist),
         "a lenet5 checkpoint of MNIST, not downloaded here"),
    Case("lr-find: too few steps", ("lr-find", "--config", "configs/lenet5_digits.yaml", "--steps", "3"),
         "--steps is 3; give 5 to 1000 optimizer steps"),
    Case("lr-find: a range that goes down", ("lr-find", "--config", "configs/lenet5_digits.yaml",
                                             "--start-lr", "1", "--end-lr", "0.001"),
         "--start-lr 1 is not below --end-lr 0.001; the sweep goes up"),
    Case("lr-find: a picture that is not a PNG",
         ("lr-find", "--config", "configs/lenet5_digits.yaml", "--output", "curve.jpg"),
         "--output curve.jpg: the picture is a PNG; name it *.png"),
    Case("report: a folder that is not a finished run", ("report", "photos"),
         "photos is not a finished run: config.yaml, history.csv, metrics.json, checkpoints/best.pt missing",
         photos({"cat": 1}), "photos/ holds images"),
    Case("report: a page that is not HTML", ("report", "runs/lenet5_digits/1", "--output", "report.pdf"),
         "--output report.pdf: the report is an HTML page; name it *.html"),
    Case("a test split too small for one image", train("data.test_split=1e-9"),
         "data.test_split 1e-09 holds out none of digits's 1,797 training images, so the test split would be empty; "
         "set data.test_split to 0.00056 or more (one image)"),
    Case("a validation split too small for one image", train("data.val_split=1e-4"),
         "data.val_split 0.0001 holds out none of digits's 1,438 training images, so the val split would be empty"),
    Case("the balanced sampler and auto class weights together", train("data.sampler=balanced",
                                                                        "loss.class_weights=auto"),
         "data.sampler balanced and loss.class_weights auto each correct the class imbalance; together they correct "
         "it twice"),
    Case("class weights by a name that is no class",
         train("data.name=imagefolder", "data.root=photos", "loss.class_weights={cat: 1, dgo: 2}"),
         "loss.class_weights: no class named 'dgo' (did you mean 'dog'?)", photos({"cat": 6, "dog": 6}),
         "photos/ holds cat/ and dog/"),
    Case("report: a metrics.json that is not the run's figures", ("report", "out/lenet5_digits/done"),
         "out/lenet5_digits/done/metrics.json holds a JSON list, not the run's figures (an object)",
         with_checkpoint(run_folder("done"), text_file("out/lenet5_digits/done/metrics.json", "[1, 2]")),
         "a finished run whose metrics.json holds [1, 2]"),
    Case("a class folder named with a newline", train("data.name=imagefolder", "data.root=photos"),
         "imagefolder: photos: the class folder 'a\\nb' has a control character (a newline, a tab) in its name",
         photos({"a\nb": 2, "dog": 2}), "photos/ holds a<newline>b/ and dog/"),
    # -- the config reader; values the run could not take; a path that names something else --
    Case("config nested thousands of levels deep", train(config="deep.yaml"),
         "deep.yaml: nested more than 32 levels deep (line 2, column 59)",
         text_file("deep.yaml", "model: {name: lenet5}\ndata: {name: digits, root: " + "[" * 5000 + "]" * 5000 + "}\n"),
         "data.root is 5,000 lists, one in another"),
    Case("config not UTF-8", train(config="latin1.yaml"),
         "latin1.yaml: not UTF-8 text (byte 0xe9 at line 3, column 22); save it as UTF-8",
         lambda work, checkpoint: (work / "latin1.yaml").write_bytes(
             b"model: {name: lenet5}\ndata: {name: digits}\ntrain: {run_name: caf\xe9}\n"), "a Latin-1 e-acute"),
    Case("config alias bomb", ("config", "validate", "laughs.yaml"),
         "laughs.yaml: its aliases repeat more than 10,000 values in all, as an alias bomb does (line 5, column 8)",
         text_file("laughs.yaml", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
                   + "".join(f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
                   + "model: {name: lenet5}\ndata: {name: digits}\n"), "9 levels of 9 aliases, 1 KB"),
    Case("seed beyond 64 bits", train("train.seed=99999999999999999999"),
         "--set train.seed: 99999999999999999999 does not fit in 64 bits; give a whole number from -2**63 to "
         "2**63 - 1"),
    Case("input size the model cannot take, 1", train("data.input_size=1"),
         "--set data.input_size: lenet5 needs inputs of at least 16x16, got 1x1"),
    Case("a run directory as the config", train(config="out/lenet5_digits/job1"),
         "out/lenet5_digits/job1 is a run directory, not a config file; its config is "
         "out/lenet5_digits/job1/config.yaml (zoo train --resume out/lenet5_digits/job1 continues the run)",
         run_folder("job1"), "out/lenet5_digits/job1 holds a finished run"),
    Case("a config file name misspelt", ("config", "validate", "configs/lenet5_digit.yaml"),
         "config file 'configs/lenet5_digit.yaml' not found; did you mean configs/lenet5_digits.yaml"),
    Case("a config where a checkpoint belongs", ("evaluate", CONFIG),
         f"{CONFIG} is a config, not a checkpoint; give a checkpoint (runs/<name>/<time>/checkpoints/best.pt) or its "
         f"run directory; zoo train --config {CONFIG} trains one"),
    Case("the config given twice", ("train", CONFIG, "--config", CONFIG),
         f"give the config once: zoo train {CONFIG} (or --config {CONFIG})"),
    # -- checkpoints and exports that load safely but hold wrong values (zoo.checkpoint.FieldCheck) --
    Case("a checkpoint whose classes are a number: evaluate", ("evaluate", CHECKPOINT),
         f"{CHECKPOINT} is damaged: its classes is an int (5), not a list; use another checkpoint", crafted(classes=5),
         "classes: 5"),
    Case("a checkpoint with NaN weights: predict", ("predict", CHECKPOINT, "photos/"),
         f"{CHECKPOINT} is damaged: its model tensor features.0.weight holds NaN or infinite values",
         with_checkpoint(crafted(model=nan_weights), photos({"cat": 1})), "weights times NaN"),
    Case("a checkpoint with a std of 0: export", ("export", CHECKPOINT, "--format", "safetensors"),
         f"{CHECKPOINT} is damaged: its normalization.std is 0.0, not above 0",
         crafted(normalization=lambda state: {**state["normalization"], "std": [0.0]}), "normalization.std: [0.0]"),
    Case("a checkpoint with a negative position: resume", ("train", "--resume", CHECKPOINT),
         f"{CHECKPOINT} is damaged: its epoch is -5, not 0 or more", crafted(epoch=-5), "epoch: -5"),
    Case("an export whose metadata names too few classes: predict", ("predict", "model.safetensors", "photos/"),
         "model.safetensors is damaged: its zoo metadata's classes has 1 name for the 10 outputs of its head; "
         "export it again with zoo export", with_checkpoint(exported(classes='["a"]'), photos({"cat": 1})),
         "classes: [\"a\"]"),
    # -- zoo sweep: every point of the grid read before the first trial; zoo compare --
    Case("sweep: a key misspelt", ("sweep", CONFIG, "--param", "optimizr.lr=0.1,0.2"),
         "--param optimizr: unknown key; did you mean optimizer?"),
    Case("sweep: a value one grid point refuses", ("sweep", CONFIG, "--param", "optimizer.name=sgd,adamm"),
         "--param optimizer.name: unknown name 'adamm'; choose one of sgd, adagrad, rmsprop, adam, adamw; did you "
         "mean adam?"),
    Case("sweep: an empty range", ("sweep", CONFIG, "--param", "optimizer.lr=0.1..0.01"),
         "--param optimizer.lr: the range 0.1..0.01 is empty; give LOW..HIGH with LOW < HIGH"),
    Case("sweep: a range of words", ("sweep", CONFIG, "--param", "optimizer.lr=sgd..adam"),
         "--param optimizer.lr=sgd..adam: the ends of a range are numbers, e.g. log:1e-4..1e-1"),
    Case("sweep: the seed as a key", ("sweep", CONFIG, "--param", "train.seed=1,2"),
         "--param train.seed: give the seeds with --seeds 0-4"),
    Case("sweep: an empty range of seeds", ("sweep", CONFIG, "--param", "init=he_normal,default", "--seeds", "3-1"),
         "--seeds 3-1: the range 3-1 is empty; write FIRST-LAST with FIRST <= LAST"),
    Case("sweep: a key without values", ("sweep", CONFIG, "--param", "optimizer.lr"),
         "--param 'optimizer.lr': write KEY=V1,V2 or KEY=LOW..HIGH"),
    Case("sweep: --trials for a grid", ("sweep", CONFIG, "--param", "init=he_normal,default", "--trials", "3"),
         "--trials 3: a grid runs each of its 2 points; --trials is for a search"),
    Case("sweep: a storage URL that does not open", ("sweep", CONFIG, "--param", "init=he_normal,default", "--storage",
                                                     "postgresql://zoo@127.0.0.1:1/study"),
         "--storage postgresql://zoo@127.0.0.1:1/study: cannot be opened"),
    Case("sweep: no worker", ("sweep", CONFIG, "--param", "init=he_normal,default", "--workers", "0"),
         "--workers 0: give 1 or more trials at once"),
    Case("sweep: nothing to sweep", ("sweep", CONFIG), "nothing to sweep: give --param KEY=V1,V2"),
    Case("sweep: no validation split to choose by",
         ("sweep", CONFIG, "--param", "init=he_normal,default", "--set", "data.val_split=0"),
         "data.val_split 0: a sweep chooses by validation top-1 and this config holds no validation split out"),
    Case("sweep: a folder of another sweep", ("sweep", CONFIG, "--param", "init=he_normal,default", "--output", "sw"),
         "sw holds another sweep (another config, --set or --param); give --output another folder, or remove that "
         "one", text_file("sw/sweep.json", '{"study": "zoo-0000000000000000"}'), "sw/sweep.json of another study"),
    Case("compare: a run with itself", ("compare", "out/lenet5_digits/job1", "out/lenet5_digits/job1"),
         "out/lenet5_digits/job1 is given twice; comparing a run with itself says nothing", run_folder("job1"),
         "a finished run"),
    Case("compare: one run", ("compare", "out/lenet5_digits/job1"), "zoo compare needs two runs or more; got 1",
         run_folder("job1"), "a finished run"),
    Case("compare: an unfinished run", ("compare", "out/lenet5_digits/job1", "out/lenet5_digits/job2"),
         "out/lenet5_digits/job2 has no metrics.json: the run stopped before its end",
         with_checkpoint(run_folder("job1"), run_folder("job2"), unfinished("out/lenet5_digits/job2")),
         "job2 without metrics.json"),
    Case("compare: a page that is not HTML", ("compare", "a", "b", "--output", "page.txt"),
         "--output page.txt: the report is an HTML page; name it *.html"),
]
