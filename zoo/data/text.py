"""Sentences as a data set (data.name text): a CSV (with a header) or JSON-lines manifest of `text`, `label` and
optionally `split` per sentence, read and checked by zoo.data.manifest's reader (the same one-line errors naming the
file and the line), tokenized once, and held as token ids from the training split's vocabulary.

    splits = text_splits(config.data, seed=config.train.seed)    # DataSplits; splits.vocabulary: zoo.checkpoint's
    tokenize("It's a fine, funny film!")        # ['it', "'s", 'a', 'fine', ',', 'funny', 'film', '!']
    batch = pad([splits.vocabulary.ids(tokenize(s)) for s in sentences], splits.vocabulary.min_tokens)  # N x L

    text,label,split                        {"text": "A fine, funny film.", "label": "pos", "split": "test"}
    "A fine, funny film.",pos,
    "Dull, and far too long.",neg,test

Columns (any case; others ignored): `text`, the sentence; `label`, its class (a number is read as text); `split`,
optional: train, val or test, as for images (a split no row gives is held out of the training rows by data.val_split /
data.test_split and train.seed, by class). Classes are the labels seen, sorted as text. Every class needs a training
sentence. A sentence's rows stay in the file's order.

The tokenizer ("words", after Kim's clean_str, but for any script): the text is NFKC-normalized and lowercased (’ and `
read as '); a run of letters, digits and _ is a word; the clitics 's, 're, 've, 'd, 'll, 'm and n't are tokens of
their own ("don't" -> do, n't); every other character that is not a space is a token of its own (punctuation, "-",
emoji). Nothing is dropped.

The vocabulary is the training split's words only (those of the rows held out are not in it), each seen once or
more, by falling count then as text, after <pad> (id 0) and <unk> (id 1, any word not in it). A sentence longer
than data.max_tokens is cut to its first max_tokens tokens (the run says how many were, once). A batch is padded
with <pad> after each sentence to its longest, and to at least MIN_TOKENS, TextCNN's widest window. The vocabulary
and these settings go into every checkpoint and export (zoo.checkpoint.Vocabulary), so zoo predict rebuilds the same
ids.

Pretrained word vectors (TextCNN's model.vectors): read_vectors reads word2vec's or GloVe's text format, a line
"word v1 v2 ... vD" per word (word2vec's first line "count D" is recognized), keeping only the vocabulary's words.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from zoo.checkpoint import Vocabulary
from zoo.config import DataConfig
from zoo.data.folders import breaks_lines
from zoo.data.manifest import Listing, Row, _label_text, _print_once, _records, _split, _text, _whole
from zoo.data.splits import DataSplits, select
from zoo.errors import ZooError

TEXT = Listing("text", "sentence", '{"text": "A fine, funny film.", "label": "pos"}')
MIN_TOKENS = 5  # TextCNN's widest window (Kim 2014: 3, 4 and 5 words): a batch is at least this long
_TOKENS = re.compile(r"\w+(?=n't\b)|n't\b|'(?:s|re|ve|d|ll|m)\b|\w+|[^\w\s]")


def tokenize(sentence: str) -> list[str]:
    """A sentence's tokens by the "words" rules (the module's docstring): lowercased words, clitics and every other
    character that is not a space."""
    text = unicodedata.normalize("NFKC", sentence).lower().replace("\u2019", "'").replace("`", "'")
    return _TOKENS.findall(text)


def build_vocabulary(sentences: Iterable[list[str]], max_tokens: int) -> Vocabulary:
    """The vocabulary of `sentences` (token lists; each counted up to max_tokens tokens, as the network sees it):
    <pad>, <unk>, then every word by falling count, ties as text."""
    counts = Counter(token for tokens in sentences for token in tokens[:max_tokens])
    words = sorted(counts, key=lambda word: (-counts[word], word))
    return Vocabulary((Vocabulary.PAD, Vocabulary.UNKNOWN, *words), max_tokens, MIN_TOKENS)


def pad(sentences: Sequence[Sequence[int] | Tensor], minimum: int) -> Tensor:
    """N sentences' token ids -> N x L int64, L the longest's (at least `minimum`), <pad> (0) after each."""
    batch = torch.zeros(len(sentences), max(minimum, *(len(ids) for ids in sentences)), dtype=torch.long)
    for row, ids in zip(batch, sentences):
        row[:len(ids)] = torch.as_tensor(ids, dtype=torch.long)
    return batch


@dataclass(frozen=True)
class Collate:
    """A DataLoader's batch of (ids, label) samples -> (N x L padded ids, N labels)."""

    minimum: int

    def __call__(self, samples: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor]:
        ids, labels = zip(*samples)
        return pad(ids, self.minimum), torch.tensor(labels, dtype=torch.long)


class Sentences(Dataset):
    """A manifest's sentences: their tokens and class indices (`targets`), and once `encode` has run, their ids;
    a sample is (ids, class index)."""

    def __init__(self, file: Path, rows: list[Row], classes: list[str]) -> None:
        index = {name: number for number, name in enumerate(classes)}
        self.file, self.classes, self.lines = file, classes, [row.line for row in rows]
        self.tokens = [tokenize(row.cell) for row in rows]
        self.targets = [index[row.labels[0]] for row in rows]
        self.ids: list[Tensor] = []
        self.split_column = False  # a whole manifest read for evaluation: its rows name splits

    def encode(self, vocabulary: Vocabulary) -> None:
        self.ids = [torch.tensor(vocabulary.ids(tokens), dtype=torch.long) for tokens in self.tokens]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.ids[index], self.targets[index]


def text_splits(cfg: DataConfig, seed: int = 0, vocabulary: Vocabulary | None = None,
                whole: str | None = None) -> DataSplits:
    """The train, val and test splits of cfg.manifest's sentences, as token ids: `vocabulary`'s (a checkpoint's), or
    one built from the training split. `seed` draws the held-out splits (zoo.data.splits.select); with `whole` (a
    split's name), that split's rows, or every row where none names a split, are the test split (train too)."""
    bases, classes = read_sentences(cfg.manifest, whole)
    selection = select(bases, classes, cfg, seed)
    if vocabulary is None:
        train = selection.bases["train"]
        vocabulary = build_vocabulary((train.tokens[i] for i in selection.indices["train"].tolist()), cfg.max_tokens)
    for base in {id(base): base for base in selection.bases.values()}.values():
        base.encode(vocabulary)
    _note_cut(cfg.manifest, list(selection.bases.values()), vocabulary.max_tokens)
    return DataSplits(*selection.views(None, None), selection.classes, (0.0,), (1.0,), 1, 1, vocabulary=vocabulary)


def read_sentences(file: Path, whole: str | None = None) -> tuple[dict[str, Dataset | None], list[str]]:
    """The manifest's splits as Sentences ({"train": ..., and "val" and "test" where rows give them}) and its class
    names; with `whole`, that split's rows as train and test both (zoo.data.manifest.read_manifest's rule)."""
    rows = [_row(file, line, record) for line, record in _records(file, _text(file, TEXT), TEXT)]
    named = any(row.split is not None for row in rows)
    if whole is not None:
        rows = _whole(file, rows, whole)
    classes = sorted({row.labels[0] for row in rows})
    _check_training(file, rows, classes, whole is not None)
    groups: dict[str, list[Row]] = {"train": []} if whole is not None else {row.split or "train": [] for row in rows}
    for row in rows:
        groups["train" if whole is not None else row.split or "train"].append(row)
    bases: dict[str, Dataset | None] = {split: Sentences(file, group, classes) for split, group in groups.items()}
    if whole is not None:
        bases["test"] = bases["train"]
        bases["train"].split_column = named
    return bases, classes


def _row(file: Path, line: int, record: dict[str, Any]) -> Row:
    """One row's sentence, label and split; ZooError, one line naming it, for one without text or label."""
    where = f"manifest: {file} line {line}"
    text, label = record.get("text"), record.get("label")
    if not isinstance(text, str) or not text.strip():
        what = "no text" if text is None or isinstance(text, str) else f"the text {json.dumps(text)} is not text"
        raise ZooError(f"{where}: {what}; give each row its sentence, or remove the row")
    if isinstance(label, list):
        raise ZooError(f"{where}: a list of labels; a sentence has one class")
    name = _label_text(where, label)
    if not name:
        raise ZooError(f"{where}: no label; give every sentence its class, or remove the row")
    if breaks_lines(name):
        raise ZooError(f"{where}: the label {name!r} has a control character (a newline, a tab); class names are "
                       "printed, drawn and written to CSV")
    return Row(line, text, (name,), _split(where, record.get("split")))


def _check_training(file: Path, rows: list[Row], classes: list[str], whole: bool) -> None:
    """Every class has a sentence to train on (`whole`: in the rows read); else one line naming a row of it."""
    present = {row.labels[0] for row in rows if whole or row.split in (None, "train")}
    absent = [name for name in classes if name not in present]
    if absent:
        row = next(row for row in rows if row.labels[0] == absent[0])
        more = f" (and {len(absent) - 1} more class{'es' if len(absent) > 2 else ''})" if len(absent) > 1 else ""
        raise ZooError(f"manifest: {file}: the class {absent[0]}{more} has no sentence to train on (line {row.line} is "
                       f"in the {row.split} split); give it training rows")


def _note_cut(file: Path, bases: list[Dataset], max_tokens: int) -> None:
    """One note for the sentences longer than max_tokens, whose later tokens the network never sees."""
    long = {(base.lines[i], len(tokens)) for base in bases for i, tokens in enumerate(base.tokens)
            if len(tokens) > max_tokens}
    if long:
        line, longest = max(long, key=lambda item: (item[1], -item[0]))
        many = len(long) > 1
        _print_once(f"note: text: {len(long):,} sentence{'s' if many else ''} of {file} {'have' if many else 'has'} "
                    f"more than data.max_tokens {max_tokens} tokens, cut to it (the longest, line {line}: {longest:,})")


def read_lines(file: Path, option: str) -> list[str]:
    """The sentences of a text file, one a line (blank lines skipped), for zoo predict's `option` (--text-file).
    Raises ZooError for a file that is missing, a folder, not UTF-8 text, or holds no sentence."""
    if not file.is_file():
        raise ZooError(f"{option} {file}: {'is a folder' if file.exists() else 'not found'}; give a text file of "
                       "sentences, one a line")
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ZooError(f"{option} {file}: not UTF-8 text (byte {error.start:,}); save it as UTF-8") from None
    except OSError as error:
        raise ZooError(f"{option} {file} cannot be read ({error.strerror or error})") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ZooError(f"{option} {file} holds no sentences (blank lines are skipped); write one sentence a line")
    return lines


def read_vectors(file: Path, vocabulary: Vocabulary) -> tuple[Tensor, Tensor]:
    """Pretrained word vectors for the vocabulary's words from a word2vec or GloVe text file: (V x D float32, zeros
    where absent; V booleans, whether the file held the word). A word is matched as written, else lowercased
    (word2vec's GoogleNews vectors are cased; the tokenizer lowercases); the file's own lowercase entry wins.
    Raises ZooError, one line naming the file and line, for a file that is missing, binary or holds a line of
    another length or a value that is no number."""
    found = torch.zeros(len(vocabulary.words), dtype=torch.bool)
    exact = torch.zeros_like(found)
    rows: dict[int, tuple[int, list[str]]] = {}  # word -> (line, its values)
    size = None
    for number, parts in _vector_lines(file):
        if size is None:
            size = _dimension(file, number, parts)
            if len(parts) == 2:  # word2vec's header: count, D
                continue
        if len(parts) < size + 1:
            count = len(parts) - 1
            raise ZooError(f"model.vectors: {file} line {number} has {count} value{'s' if count != 1 else ''}, not "
                           f"{size}: a word and {size} numbers per line")
        word = " ".join(parts[:-size])
        index, cased = vocabulary.index.get(word), word not in vocabulary.index
        index = vocabulary.index.get(word.lower()) if index is None else index
        if index is not None and not exact[index] and not (cased and found[index]):
            rows[index], found[index], exact[index] = (number, parts[-size:]), True, not cased
    vectors = torch.zeros(len(vocabulary.words), size or 1)
    for index, (number, values) in rows.items():
        vectors[index] = torch.tensor(_numbers(file, number, values))
    return vectors, found


def _vector_lines(file: Path) -> Iterable[tuple[int, list[str]]]:
    """(line number, its fields) of each line that is not blank."""
    if not file.is_file():
        raise ZooError(f"model.vectors: {file} {'is a folder' if file.exists() else 'not found'}; give a word2vec or "
                       "GloVe text file (a word and its values per line)")
    number = 0
    try:
        with open(file, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if "\0" in line:  # a binary file that happens to decode
                    raise UnicodeError
                parts = line.rstrip("\r\n").rstrip(" ").split(" ")
                if parts != [""]:
                    yield number, parts
    except UnicodeError:
        raise ZooError(f"model.vectors: {file} is not UTF-8 text (near line {number + 1}): zoo reads the text "
                       "format; write word2vec's binary .bin as text (gensim: save_word2vec_format(..., binary=False))"
                       ) from None


def _dimension(file: Path, number: int, parts: list[str]) -> int:
    """D, from the first line: word2vec's header "count D", or a word and its D values."""
    if len(parts) == 2 and all(part.isdigit() for part in parts):
        return int(parts[1])
    if len(parts) < 2:
        raise ZooError(f"model.vectors: {file} line {number} holds no values; a line is a word and its values")
    return len(parts) - 1


def _numbers(file: Path, line: int, values: list[str]) -> list[float]:
    try:
        return [float(value) for value in values]
    except ValueError:
        bad = next(value for value in values if not _is_number(value))
        raise ZooError(f"model.vectors: {file} line {line}: {bad!r} is not a number; a line is a word and its "
                       "values") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
