"""TextCNN: Kim (2014), "Convolutional Neural Networks for Sentence Classification", EMNLP 2014, arXiv:1408.5882.

A sentence of L token ids (zoo.data.text) becomes L word vectors of 300 values; 100 filters of each window of 3, 4
and 5 words slide over them, each map goes through a ReLU and max-over-time pooling (one value per filter, whatever
L), and the 300 values, dropped out with p = 0.5, go to a linear head. After every optimizer step each row of the
head's weight (one class's) is rescaled to an L2 norm of s = 3 where it is longer (`apply_constraints`, which the
training loop calls). The paper's three single-channel variants are the builder's `embedding`:

    rand        CNN-rand: every word vector random, trained
    static      CNN-static: pretrained vectors (`vectors`: a word2vec or GloVe text file), frozen
    non-static  CNN-non-static: the pretrained vectors, fine-tuned

Words the vectors do not hold (and every word of CNN-rand) are drawn from U[-a, a]: for the pretrained variants a
makes their variance the pretrained vectors' (a^2 / 3 = it), as Kim's paper says; for CNN-rand a = 0.25, the value
of Kim's code. <pad>'s vector is zero and never trained. The vectors are read by the run's set-up
(zoo.training.setup, through zoo.data.text.read_vectors and `load_vectors`), since only the data knows which word each
row is; a checkpoint holds them, so nothing reads the file again.

Differences from the paper: CNN-multichannel (a static and a non-static copy as two channels) is not built. A window
that runs past a sentence's end (into the batch's padding) is left out of the max, so that a sentence's logits are
the same in any batch; a sentence shorter than 5 tokens keeps the one window over it and its padding (Kim's code
pads every sentence with 4 zero vectors at both ends instead). Kim trained with Adadelta (rho 0.95) on mini-batches
of 50; zoo's optimizers are configs/textcnn_sentences.yaml's choice.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.errors import ZooError
from zoo.models.base import Classifier
from zoo.models.layers import activation_layer
from zoo.models.registry import Paper, register_model

KIM_2014 = Paper("Kim", 2014, "Convolutional Neural Networks for Sentence Classification (EMNLP)", "arXiv:1408.5882")
WINDOWS = (3, 4, 5)  # words per filter (section 3.1)
EMBEDDINGS = ("rand", "static", "non-static")  # the single-channel variants of section 3.1
RAND_BOUND = 0.25  # U[-0.25, 0.25]: Kim's code's draw for word vectors with no pretrained value
MR_VOCABULARY = 18_765  # |V| of MR, Pang and Lee's sentence polarity (Table 1): the default vocabulary size


class MaxOverTime(nn.Module):
    """Each filter's largest value over the windows that lie within the sentence (section 2): N x C x T maps of a
    window of `window` tokens, the sentences' lengths in tokens (N) -> N x C. A sentence shorter than the window keeps
    its first window, over it and its padding."""

    def forward(self, maps: Tensor, lengths: Tensor, window: int) -> Tensor:
        last = lengths.clamp(min=window) - window  # the last window start within each sentence
        within = torch.arange(maps.shape[2], device=maps.device) <= last[:, None]  # N x T
        return maps.masked_fill(~within[:, None, :], float("-inf")).amax(dim=2)


class TextCNN(Classifier):
    """Kim's network: embedding, one convolution per window, max-over-time pooling, dropout, linear head."""

    head_paths = ("fc",)
    min_input_size = max(WINDOWS)  # tokens: the widest window needs that many (zoo.data.text pads to it)
    input_dtype = torch.long  # token ids (zoo.summary traces it on them)

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 1,  # embedding channels: 1 (CNN-multichannel's 2 is not built)
        vocab_size: int = MR_VOCABULARY,  # rows of the embedding: the data's vocabulary, <pad> and <unk> included
        padding_idx: int = 0,  # <pad>'s id: its vector stays zero, and sentences end where it begins
        embedding: str = "rand",  # rand, static or non-static (EMBEDDINGS)
        vectors: str | None = None,  # static, non-static: a word2vec or GloVe text file, read by the run's set-up
        embedding_dim: int = 300,  # values per word vector (word2vec's GoogleNews vectors: 300)
        feature_maps: int = 100,  # filters per window
        dropout: float = 0.5,  # before the head (section 3.1)
        max_norm: float | None = 3.0,  # s: the largest L2 norm of a head row; None: no constraint
        activation: str = "relu",  # after each convolution: a name in zoo.models.layers.ACTIVATIONS
    ) -> None:
        super().__init__()
        _check(in_channels, vocab_size, padding_idx, embedding, vectors, dropout, max_norm)
        self.num_classes, self.padding_idx, self.vectors, self.max_norm = num_classes, padding_idx, vectors, max_norm
        # An empty weight, drawn by init_weights: nn.Embedding's own N(0, 1) draw would be replaced anyway, and on the
        # meta device (zoo list, zoo summary) normal_ imports torch._dynamo, 2 s
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx,
                                      _weight=torch.empty(vocab_size, embedding_dim))
        self.embedding.weight.requires_grad_(embedding != "static")
        self.conv3 = nn.Conv1d(embedding_dim, feature_maps, 3)  # one per window of WINDOWS: N x 100 x (L - 2)
        self.conv4 = nn.Conv1d(embedding_dim, feature_maps, 4)  # N x 100 x (L - 3)
        self.conv5 = nn.Conv1d(embedding_dim, feature_maps, 5)  # N x 100 x (L - 4)
        self.act = activation_layer(activation)
        self.pool = MaxOverTime()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(len(WINDOWS) * feature_maps, num_classes)
        self.initialize()

    def check_input(self, x: Tensor) -> None:
        """Token ids, N x L int64 with L at least the widest window; one line otherwise, before any layer runs."""
        if x.dim() != 2 or x.is_floating_point():
            raise ZooError(f"{getattr(self, 'name', 'textcnn')} reads token ids, N x L integers, not a "
                           f"{'x'.join(map(str, x.shape))} {str(x.dtype).removeprefix('torch.')} tensor; give "
                           "sentences (zoo.data.text prepares them)")
        if x.shape[1] < self.min_input_size:
            raise ZooError(f"{getattr(self, 'name', 'textcnn')} needs at least {self.min_input_size} tokens per "
                           f"sentence, got {x.shape[1]}; pad with <pad> (id {self.padding_idx})")

    def forward_features(self, x: Tensor) -> Tensor:
        lengths = (x != self.padding_idx).sum(dim=1)  # N: padding only follows a sentence
        words = self.embedding(x).transpose(1, 2)  # N x 300 x L
        pooled = [self.pool(self.act(conv(words)), lengths, conv.kernel_size[0])  # N x 100 each
                  for conv in (self.conv3, self.conv4, self.conv5)]
        return torch.cat(pooled, dim=1)  # N x 300

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(x))

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Kim's max-norm (section 2.1): every row of the head's weight whose L2 norm exceeds max_norm is rescaled
        to max_norm."""
        if self.max_norm is not None:
            self.fc.weight.renorm_(2, 0, self.max_norm)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Word vectors from U[-0.25, 0.25] (Kim's code), <pad>'s zero; the convolutions and head keep the draws of
        their constructors (PyTorch's defaults)."""
        nn.init.uniform_(self.embedding.weight, -RAND_BOUND, RAND_BOUND)
        self.embedding.weight[self.padding_idx].zero_()

    @torch.no_grad()
    def load_vectors(self, vectors: Tensor, found: Tensor) -> float:
        """Pretrained word vectors into the embedding: row i of V x D `vectors` where `found` (V booleans) says the
        file held word i; every other word (<unk> too) from U[-a, a] with a = sqrt(3 x the pretrained values'
        variance), so that its variance is theirs; <pad> stays zero. Returns a. Raises ZooError for vectors of
        another size than the embedding, or none found."""
        weight = self.embedding.weight
        if vectors.shape != weight.shape:
            raise ZooError(f"model.vectors: {self.vectors} holds {vectors.shape[1]}-value vectors; "
                           f"{getattr(self, 'name', 'textcnn')}'s embedding takes {weight.shape[1]} values a word: "
                           f"set model.embedding_dim: {vectors.shape[1]}")
        if not found.any():
            raise ZooError(f"model.vectors: {self.vectors} holds none of the training split's words; give vectors of "
                           "its language (word2vec's or GloVe's text file)")
        bound = math.sqrt(3 * vectors[found].double().var(correction=0).item())
        weight.uniform_(-bound, bound)
        weight[found] = vectors[found].to(weight.dtype)
        weight[self.padding_idx].zero_()
        return bound

    def first_conv(self, key: str = "--filters") -> tuple[str, nn.Conv2d]:
        raise ZooError(f"{key}: {getattr(self, 'name', 'textcnn')}'s filters are windows of 3 to 5 words over "
                       f"{self.embedding.embedding_dim}-value word vectors, not pictures to draw; remove it")


def _check(in_channels: int, vocab_size: int, padding_idx: int, embedding: str, vectors: str | None, dropout: float,
           max_norm: float | None) -> None:
    """One line for an argument TextCNN cannot take."""
    problems = [
        (in_channels != 1, f"in_channels {in_channels}: TextCNN reads one embedding per token (CNN-multichannel's "
                           "two are not built); remove model.in_channels"),
        (not 0 <= padding_idx < vocab_size, f"padding_idx {padding_idx} is not a row of a {vocab_size}-word "
                                            "embedding"),
        (embedding not in EMBEDDINGS, f"unknown embedding {embedding!r}; choose one of {', '.join(EMBEDDINGS)}"),
        (embedding != "rand" and not vectors, f"embedding {embedding} starts from pretrained vectors; set "
                                              "model.vectors to a word2vec or GloVe text file"),
        (embedding == "rand" and bool(vectors), "vectors are read by embedding static or non-static; CNN-rand's "
                                                "are random: set model.embedding, or remove model.vectors"),
        (not 0 <= dropout < 1, f"dropout must be a probability in [0, 1), got {dropout!r}"),
        (max_norm is not None and not max_norm > 0, f"max_norm must be above 0 (Kim's s = 3), or null for none; "
                                                    f"got {max_norm!r}"),
    ]
    for wrong, why in problems:
        if wrong:
            raise ZooError(why)


@register_model(family="textcnn", paper=KIM_2014, input_size=(20,), num_classes=2, input="tokens")  # MR's l (Table 1)
def textcnn(num_classes: int = 2, in_channels: int = 1, **kwargs) -> TextCNN:
    """Kim's CNN for sentences: CNN-rand by default; `embedding` static or non-static with `vectors` (a word2vec or
    GloVe text file) for the pretrained variants. Other keyword arguments go to TextCNN: vocab_size and padding_idx
    (the data's vocabulary sets them), embedding_dim, feature_maps, dropout, max_norm and activation. The defaults
    are MR's (Pang and Lee's sentence polarity: 2 classes, 18,765 words, sentences of 20 tokens on average)."""
    return TextCNN(num_classes, in_channels, **kwargs)
