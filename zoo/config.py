"""The training config: YAML read once, `--set a.b=c` overrides merged, validated into one frozen object.

This is the only module that reads YAML. After `load_config`, no function takes a dict. Every
problem is reported at load, before any data is read or anything written, as one line per key:
`optimizer.lr: must be greater than 0`, `optimizr: unknown key; did you mean optimizer?`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from zoo.datasets import DATASETS, IN_MEMORY, SPECS  # data.name's choices, those loader memory holds, each set's facts
from zoo.errors import ConfigError, ZooError
from zoo.models.weight_init import SCHEMES as INITS  # init's choices: the schemes zoo.models.weight_init knows

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adamw")
# torch's fused kernels
FUSED_DEVICES = {"sgd": ("cpu", "cuda"), "adam": ("cpu", "cuda"), "adamw": ("cpu", "cuda"), "adagrad": ("cpu",)}
SCHEDULERS = ("none", "step", "multistep", "cosine", "onecycle")
PRECISIONS = ("32", "bf16", "16")
LOADERS = ("auto", "memory", "torchvision")
SAMPLERS = ("shuffle", "balanced")
POLICIES = ("none", "randaugment", "trivialaugment", "autoaugment", "augmix")  # torchvision.transforms.v2's
AUTOAUGMENT_POLICIES = ("imagenet", "cifar10", "svhn")  # v2.AutoAugmentPolicy: the data set the policy was learned on
POLICY_SETTINGS = {"num_ops": "randaugment", "magnitude": "randaugment", "autoaugment_policy": "autoaugment",
                   "severity": "augmix"}  # data.augment's keys that belong to one policy
METRICS = ("val_accuracy", "val_loss")
# What a network is trained to do (zoo.tasks): one class per image, a set of labels per image (sigmoid outputs), or
# the picture itself (an autoencoder's reconstruction: denoising, anomaly detection).
TASKS = ("classification", "multilabel", "reconstruction")
RECONSTRUCTION_LOSSES = ("bce", "mse")
# The keys that decide which images the carved validation and test splits hold (with the data set itself).
HOLD_OUT_KEYS = ("data.classes", "data.val_split", "data.test_split", "data.synthetic_size", "data.synthetic_classes",
                 "train.seed")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # .inf and .nan are YAML floats too

    @field_validator("*")
    @classmethod
    def _fits_64_bits(cls, value: Any) -> Any:
        return fits_64_bits(value)


def fits_64_bits(value: Any) -> Any:
    """`value`, if every whole number in it (a list's too) fits in 64 bits: torch takes seeds, sizes and counts as
    int64 and fails on more with "Overflow when unpacking long long". (torch.manual_seed takes -2**63 to
    2**64 - 1, so train.seed + rank + epoch stays in its range; NumPy gets the seed mod 2**32, Python's random any.)"""
    for number in value if isinstance(value, tuple) else (value,):
        if isinstance(number, int) and not isinstance(number, bool) and not -2**63 <= number < 2**63:
            raise ValueError(f"{number} does not fit in 64 bits; give a whole number from -2**63 to 2**63 - 1 "
                             "(9223372036854775807)")
    return value


class ModelConfig(BaseModel):
    """`name`, and any other key is a keyword argument of the model's builder (e.g. small_input: true)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str  # a registered model: zoo list shows them
    num_classes: int | None = Field(None, gt=0)  # None: the data set's class count
    in_channels: int | None = Field(None, gt=0)  # None: the model's own (images are converted to it)

    _fits_64_bits = field_validator("num_classes", "in_channels")(fits_64_bits)

    @model_validator(mode="before")
    @classmethod
    def _typed_arguments(cls, data: Any) -> Any:
        """Builder arguments converted to the types the model's builder declares, as the other sections' keys are
        (`small_input: no` is False, not the text 'no'); an unknown model is model.name's error, found later."""
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return data
        from pydantic import TypeAdapter
        from pydantic.errors import PydanticSchemaGenerationError

        from zoo.models.registry import argument_types

        try:
            types = argument_types(data["name"])
        except ZooError:
            return data
        typed = dict(data)
        for key, value in data.items():
            if key in cls.model_fields or key not in types:
                continue
            try:
                adapter = TypeAdapter(types[key])
            except PydanticSchemaGenerationError:
                continue
            try:
                typed[key] = adapter.validate_python(value)
            except ValidationError as error:
                raise ValueError(f"{key}: {_describe(error.errors()[0]).removeprefix('config: ')}") from None
        return typed

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def build(self, num_classes: int | None = None, in_channels: int | None = None, vocabulary: Any = None) -> Any:
        """The model this section names, through zoo.create_model: num_classes and in_channels as set here, else
        the ones given (the data's), else the paper's; every other key goes to the builder, with the arguments a
        text network's `vocabulary` decides (zoo.checkpoint.Vocabulary.builder_arguments: vocab_size, padding_idx;
        None for pictures). Weights are the model's own initialization; under `with torch.device("meta")`, shapes
        only. Raises ZooError for a key of this section that the vocabulary sets otherwise."""
        from zoo.models.registry import create_model

        data = {} if vocabulary is None else vocabulary.builder_arguments
        clash = next((key for key, value in data.items() if self.kwargs.get(key, value) != value), None)
        if clash is not None:
            raise ZooError(f"model.{clash} is {self.kwargs[clash]!r}, but the data makes it {data[clash]!r} (the "
                           f"training split's vocabulary); remove model.{clash}")
        return create_model(self.name, num_classes=self.num_classes or num_classes,
                            in_channels=self.in_channels or in_channels, **{**self.kwargs, **data})


FLAG, SECTION = "flag", "section"  # the two forms of a key that takes true/false or a section (data.augment)


def _flag_or_section(value: Any) -> str:
    """Which form a value takes: a mapping is the section, anything else the flag (validated as a bool)."""
    return SECTION if isinstance(value, (dict, BaseModel)) else FLAG


class AugmentConfig(Section):
    """data.augment as a section: training images are cropped and flipped as with `augment: true` (data.crop_padding,
    data.hflip), then changed by what these keys turn on, in this order: color jitter, rotation, the policy
    (each on the image as stored, before scaling), random erasing (after normalization), and the batch's
    Mixup/CutMix (in the training step). All are torchvision.transforms.v2's, drawn per image."""

    policy: Literal[POLICIES] = "none"  # torchvision.transforms.v2's automatic augmentation, per image
    num_ops: int = Field(2, gt=0)  # randaugment: operations per image (Cubuk et al. 2019, arXiv:1909.13719: N=2)
    magnitude: int = Field(9, ge=0, le=30)  # randaugment: of 31 bins; torchvision's default 9
    autoaugment_policy: Literal[AUTOAUGMENT_POLICIES] = "imagenet"  # autoaugment (Cubuk et al. 2018, arXiv:1805.09501)
    severity: int = Field(3, ge=1, le=10)  # augmix (Hendrycks et al. 2019, arXiv:1912.02781)
    color_jitter: float = Field(0.0, ge=0, le=1)  # brightness, contrast and saturation factors from [1 - x, 1 + x]
    rotation: float = Field(0.0, ge=0, le=180)  # degrees, uniform in [-x, x], black corners
    random_erasing: float = Field(0.0, ge=0, le=1)  # probability per image (Zhong et al. 2017, arXiv:1708.04896)
    # Beta(alpha, alpha) blend of image pairs (Zhang et al. 2017, arXiv:1710.09412)
    mixup_alpha: float = Field(0.0, ge=0)
    cutmix_alpha: float = Field(0.0, ge=0)  # pasted boxes (Yun et al. 2019, arXiv:1905.04899)
    switch_prob: float = Field(0.5, ge=0, le=1)  # with both alphas: the share of batches that take CutMix (timm's)

    @model_validator(mode="after")
    def _check(self) -> AugmentConfig:
        for key, owner in POLICY_SETTINGS.items():  # a default value is no setting: a saved config holds them all
            if getattr(self, key) != type(self).model_fields[key].default and self.policy != owner:
                raise ValueError(f"{key} is a setting of policy {owner}, and the policy is {self.policy}; "
                                 f"set policy: {owner}, or remove {key}")
        if self.switch_prob != type(self).model_fields["switch_prob"].default \
                and not (self.mixup_alpha and self.cutmix_alpha):
            raise ValueError("switch_prob chooses between Mixup and CutMix; it needs mixup_alpha and cutmix_alpha "
                             "above 0, or remove it")
        return self

    @property
    def mixes(self) -> bool:
        """Whether training batches are mixed (Mixup or CutMix), so that the loss takes soft targets."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @property
    def per_image(self) -> bool:
        """Whether a key turns on a transform that runs image by image (jitter, rotation, a policy, random erasing):
        one given a batch would draw a single set of parameters for all of it (zoo.data.transforms.augmentation)."""
        return bool(self.color_jitter or self.rotation or self.policy != "none" or self.random_erasing)


class DataConfig(Section):
    name: Literal[DATASETS]  # the data set (zoo.datasets.SPECS); imagefolder: your own, one folder per class
    root: Path = Path("data")  # imagefolder: the folder of class folders; torchvision's: their files (or a download)
    # manifest: a .csv (with a header) or .jsonl file of `path` (relative to the file, or absolute), `label` and
    # optionally `split` (train, val or test) per image; text: of `text` (the sentence), `label` and `split`
    manifest: Path | None = None
    max_tokens: int = Field(256, gt=0)  # text: a longer sentence's later tokens are cut (the run says how many were)
    label_delimiter: str = Field(";", min_length=1)  # manifest: between the labels of one cell (task multilabel)
    download: bool = True  # fetch a missing data set when online
    batch_size: int = Field(128, gt=0)  # per process, under torchrun too
    eval_batch_size: int | None = Field(None, gt=0)  # None: batch_size
    workers: int | None = Field(None, ge=0)  # DataLoader workers; None: chosen for the data set
    input_size: int | None = Field(None, gt=0)  # side the images are resized/padded to; None: the model's
    normalize: bool = True  # subtract mean, divide by std
    mean: tuple[float, ...] | None = None  # None: the data set's own statistics
    std: tuple[float, ...] | None = None  # per channel, with mean; None: the data set's own
    # true: random crop with padding and (if hflip) horizontal flip, on training data only; a section (policy,
    # mixup_alpha ...: AugmentConfig) adds to them
    augment: Annotated[Annotated[bool, Tag(FLAG)] | Annotated[AugmentConfig, Tag(SECTION)],
                       Discriminator(_flag_or_section)] = False
    crop_padding: int = Field(4, ge=0)  # augment: pixels of black padding before the random crop back to size
    hflip: bool = True  # augment: mirror half the images; set false for digits and text (mirrored, another class)
    val_split: float = Field(0.1, ge=0, lt=1)  # held out of training data when the set has no validation split
    test_split: float = Field(0.2, gt=0, lt=1)  # for sets without a test split (digits, an ImageFolder without test/)
    classes: tuple[int, ...] | None = None  # keep only these class indices, relabelled 0..k-1
    synthetic_size: int = Field(512, gt=0)  # images in the synthetic set; samples in a xor training epoch
    synthetic_classes: int = Field(10, gt=1)  # classes of the synthetic set (FakeData)
    # memory: tensors on the device, batched augmentation (digits, MNIST, Fashion-MNIST, CIFAR-10/100); torchvision:
    # per-sample transforms in DataLoader workers; auto: memory for those sets, except per-image data.augment keys
    # on a set read from files
    loader: Literal[LOADERS] = "auto"
    sampler: Literal[SAMPLERS] = "shuffle"  # balanced: each class drawn equally often (with replacement), for imbalance
    # task reconstruction: the standard deviation of Gaussian noise added to the inputs alone, on [0, 1] pixels and
    # clipped back to them (a denoising autoencoder, Vincent et al. 2008); the target stays the clean picture
    noise: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError("std values must be greater than 0")
        if self.classes is not None and not self.classes:
            raise ValueError("classes is empty; list two or more class indices, or remove it")
        if self.classes is not None and (len(set(self.classes)) != len(self.classes) or min(self.classes) < 0):
            raise ValueError("classes must be distinct class indices, 0 or more")
        listed = {"manifest": "path", "text": "text"}  # the data sets a manifest lists: its samples' column
        if self.name in listed and self.manifest is None:
            raise ValueError(f"name {self.name} reads data.manifest; set it to a .csv or .jsonl file of "
                             f"{listed[self.name]} and label")
        if self.name not in listed and self.manifest is not None:
            raise ValueError(f"manifest is read only with data.name manifest or text (this is {self.name}); "
                             "set data.name: manifest, or remove data.manifest")
        if SPECS[self.name].modality == "text":
            self._check_sentences()
        if any(char in self.label_delimiter for char in "\n\r"):
            raise ValueError("label_delimiter cannot hold a line break; give a character such as ; or |")
        if self.loader == "memory" and self.name not in IN_MEMORY:
            raise ValueError(f"loader memory holds {', '.join(IN_MEMORY)}; "
                             f"{self.name} takes loader auto or torchvision")
        return self

    def _check_sentences(self) -> None:
        """Keys for pictures, given to sentences (xor, which holds no pictures either, says so where it reads them)."""
        given = next((key for key, value in (("input_size", self.input_size), ("augment", self.augmentation),
                                             ("mean", self.mean)) if value is not None), None)
        if given is not None:
            raise ValueError(f"{given} is for pictures; data.name text gives the network sentences as token ids "
                             f"(data.max_tokens cuts them): remove data.{given}")

    @property
    def augmentation(self) -> AugmentConfig | None:
        """What augments the training images: None when nothing does; `augment: true` is the section's defaults."""
        if isinstance(self.augment, AugmentConfig):
            return self.augment
        return AugmentConfig() if self.augment else None


class OptimizerConfig(Section):
    name: Literal[OPTIMIZERS] = "sgd"  # torch.optim's SGD, Adagrad, RMSprop, Adam or AdamW
    lr: float = Field(0.1, gt=0)  # the learning rate (the schedule's peak); zoo lr-find suggests one
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd and rmsprop
    nesterov: bool = False  # sgd only
    weight_decay: float = Field(0.0, ge=0)  # L2 penalty (sgd, adam, ...), decoupled decay for adamw
    decay_bias_and_norm: bool = True  # False: no weight decay on biases and normalization weights
    betas: tuple[float, float] = (0.9, 0.999)  # adam, adamw
    eps: float = Field(1e-8, gt=0)  # added to the denominator: adam, adamw, rmsprop, adagrad
    # torch's fused kernel, one kernel stepping every parameter (sgd, adam, adamw on CPU and CUDA; adagrad on CPU).
    # auto: fused on the CPU, where it measured 3x faster; torch's default elsewhere (foreach on CUDA)
    fused: bool | Literal["auto"] = "auto"

    @model_validator(mode="after")
    def _check(self) -> OptimizerConfig:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs name: sgd and a momentum above 0")
        if self.fused is True and self.name not in FUSED_DEVICES:
            raise ValueError(f"fused: torch has no fused {self.name}; set fused: auto, "
                             f"or name one of {', '.join(FUSED_DEVICES)}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError("betas must lie in [0, 1)")
        return self


class SchedulerConfig(Section):
    name: Literal[SCHEDULERS] = "none"  # the learning rate over the run, stepped every optimizer step
    warmup_epochs: float = Field(0.0, ge=0)  # linear warmup from lr/100, counted in (fractional) epochs
    step_size: int = Field(30, gt=0)  # step: epochs between decays
    milestones: tuple[int, ...] = ()  # multistep: epochs at which to decay
    gamma: float = Field(0.1, gt=0, le=1)  # step, multistep: decay factor
    min_lr: float = Field(0.0, ge=0)  # cosine: the floor
    pct_start: float = Field(0.3, gt=0, lt=1)  # onecycle: share of steps spent rising to optimizer.lr

    @model_validator(mode="after")
    def _check(self) -> SchedulerConfig:
        if self.name == "multistep" and not self.milestones:
            raise ValueError("multistep needs milestones, e.g. [30, 60, 90]")
        if list(self.milestones) != sorted(set(self.milestones)) or any(m <= 0 for m in self.milestones):
            raise ValueError("milestones must be increasing epochs above 0")
        return self


class LossConfig(Section):
    label_smoothing: float = Field(0.0, ge=0, lt=1)  # targets (1 - x) one-hot + x / classes (Szegedy et al. 2015)
    aux_weight: float = Field(0.3, ge=0)  # auxiliary heads: GoogLeNet's (Szegedy et al.: 0.3), Inception v3's (0.4)
    # Training loss weight per class: auto, N / (K x n_c) over the training split (scikit-learn's "balanced"); a
    # mapping {class name: weight} naming every class; or a list, one weight per class in the classes' order (an
    # ImageFolder's sorted as text: 1, 10, 2). The run prints which weight each class got. Validation and test
    # losses stay unweighted. Not with data.sampler balanced and auto together: both correct the imbalance.
    class_weights: Literal["auto"] | tuple[float, ...] | dict[str, float] | None = None

    @field_validator("class_weights", mode="before")
    @classmethod
    def _names_as_text(cls, value: Any) -> Any:
        """Class names as text: YAML reads the folder names 1, 2, 10 as numbers."""
        return {str(name): weight for name, weight in value.items()} if isinstance(value, dict) else value

    @field_validator("class_weights")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        weights = list(value.values()) if isinstance(value, dict) else value
        if isinstance(value, tuple | dict) and (not weights or any(weight <= 0 for weight in weights)):
            raise ValueError("give auto, or one weight above 0 per class")
        return value


class EarlyStoppingConfig(Section):
    metric: Literal[METRICS] = "val_accuracy"  # what must improve: validation top-1, or validation loss
    patience: int = Field(5, gt=0)  # epochs without improvement before stopping
    min_delta: float = Field(0.0, ge=0)  # an improvement smaller than this does not count


class EmaConfig(Section):
    """An exponential moving average of the weights (zoo.training.ema), evaluated beside them each epoch."""

    decay: float = Field(0.9998, gt=0, lt=1)  # per optimizer step; timm's default. Remembers ~1 / (1 - decay) steps
    warmup_steps: int = Field(0, ge=0)  # the decay rises linearly from 0 over these optimizer steps


class TrainConfig(Section):
    epochs: int = Field(10, gt=0)  # passes over the training split
    seed: int = 0  # weights, data order, held-out splits and augmentation; each rank adds its rank
    deterministic: bool = False  # bit-reproducible kernels (slower on GPU)
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    precision: Literal[PRECISIONS] = "32"  # bf16 or 16 (float16 with a gradient scaler) autocast on GPU
    channels_last: bool = False  # NHWC weights and batches: tensor cores' layout; oneDNN's faster kernels on CPUs
    compile: bool = False  # torch.compile the training step's model; CUDA only (on the CPU: ignored, slower there)
    threads: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"  # CPU threads per process (zoo.runtime.cpu_threads)
    grad_clip: float | None = Field(None, gt=0)  # max global gradient norm
    accumulate_steps: int = Field(1, gt=0)  # batches whose gradients add up to one optimizer step
    ema: EmaConfig | None = None  # an average of the weights, chosen for best.pt when it validates better
    log_interval: int = Field(50, gt=0)  # optimizer steps between TensorBoard scalars and gradient norms (20+ per run)
    # epochs between weight histograms and confusion images; None: auto
    histogram_interval: int | None = Field(None, gt=0)
    # the first convolution's filters as a TensorBoard image each validation (filters/<layer>)
    log_filters: bool = False
    max_steps_per_epoch: int | None = Field(None, gt=0)  # cut epochs short: smoke tests and quick looks
    checkpoint_every_steps: int | None = Field(None, gt=0)  # also save last.pt within epochs: resume mid-epoch
    early_stopping: EarlyStoppingConfig | None = None
    output_dir: Path = Path("runs")  # runs go to output_dir/run_name/<time or run_id>
    run_name: str | None = None  # None: <model>_<data>
    # the run directory's name (runs/<run_name>/<run_id>) instead of the start time: starts the run, or continues it
    # (zoo.training.restarts)
    run_id: str | None = None

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value  # YAML reads `precision: 16` as a number

    @field_validator("threads", mode="before")
    @classmethod
    def _threads(cls, value: Any) -> Any:
        number = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str) and value.strip().isdigit():
            number = int(value)
        if value != "auto" and (number is None or number < 1):
            raise ValueError(f"must be auto or a number of threads, 1 or more (got {value!r})")
        return value if value == "auto" else number

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return value

    @field_validator("run_name")
    @classmethod
    def _run_name(cls, value: str | None) -> str | None:
        if value is not None and (not re.fullmatch(r"[\w.-]+", value) or value in (".", "..")):
            raise ValueError("use letters, digits, '.', '_' and '-' only (it names a folder)")
        return value

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        # It names a folder that scripts pass around ($SLURM_JOB_ID): no hidden folder, nothing read as an option
        if value is not None and not re.fullmatch(r"\w[\w.-]*", value):
            raise ValueError(f"{value!r}: use letters, digits, '.', '_' and '-', starting with a letter, a digit "
                             "or '_' (it names the run's folder)")
        return value


class FinetuneConfig(Section):
    """Start from trained weights: a zoo checkpoint, a torchvision state_dict file, or torchvision:<Weights>."""

    source: str  # runs/.../best.pt, resnet18.pth, or torchvision:ResNet18_Weights.IMAGENET1K_V1
    freeze: str = "none"  # none, backbone (only the new head trains) or until:<module> (e.g. until:layer3)
    backbone_lr_mult: float = Field(1.0, gt=0, le=1)  # the pre-trained layers' lr = optimizer.lr x this
    unfreeze_at_epoch: int | None = Field(None, gt=1)  # from this epoch on, everything trains
    strict: bool = True  # False: load the keys that fit, report the rest
    # the entry of another tool's checkpoint holding the weights (state_dict_ema); default: the first known
    source_key: str | None = None

    @field_validator("freeze")
    @classmethod
    def _freeze(cls, value: str) -> str:
        if value not in ("none", "backbone") and not re.fullmatch(r"until:[A-Za-z_][\w.]*", value):
            raise ValueError("must be none, backbone or until:<module name> (e.g. until:layer3)")
        return value

    @model_validator(mode="after")
    def _check(self) -> FinetuneConfig:
        if self.unfreeze_at_epoch is not None and self.freeze == "none":
            raise ValueError("unfreeze_at_epoch needs a freeze other than none")
        if self.source_key is not None and self.source.startswith("torchvision:"):
            raise ValueError("source_key picks an entry of a checkpoint file; torchvision weights have none: remove it")
        return self


class SweepConfig(Section):
    """What `zoo sweep CONFIG` varies (zoo.experiments); `zoo train` trains the config as written and ignores it."""

    # key -> its values, a list (a grid), or a range: "0.001..0.1", "log:1e-4..1e-1", "int:16..128" (a search)
    params: dict[str, list[Any] | str] = {}
    # name -> settings that change together, {key: value, ...}: one more swept dimension, whose values are the names
    variants: dict[str, dict[str, Any]] = {}
    seeds: str | list[int] | int | None = None  # every configuration once per seed: "0-4", [0, 1, 2]; None: train.seed
    trials: int | None = Field(None, gt=0)  # a search's configurations (a grid runs all of its points)


class MultilabelConfig(Section):
    # each class's decision threshold on its sigmoid probability: one for every class, or val: each class's chosen
    # on the validation split to maximise its F1 (0.5 for a class without a positive there, or with no val split)
    threshold: Literal["val"] | float = "val"

    @field_validator("threshold", mode="before")
    @classmethod
    def _val_or_probability(cls, value: Any) -> Any:
        """One line naming both choices, not pydantic's of each member of the union."""
        number = None
        if not isinstance(value, bool) and isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str) and value != "val":
            try:
                number = float(value)
            except ValueError:
                pass
        if value == "val" or (number is not None and 0 < number < 1):
            return value if value == "val" else number
        raise ValueError(f"give val (each class's, chosen on the validation split) or one probability between 0 and 1, "
                         f"not {value!r}")


def _model_task(name: str) -> str | None:
    """The task a registered model is built for (None for a name zoo does not know: model.name's own error)."""
    from zoo.models.registry import get_model_info

    try:
        return get_model_info(name).task
    except ZooError:
        return None


class ReconstructionConfig(Section):
    # bce: binary cross-entropy of the sigmoid outputs against the [0, 1] pixels (Keras's autoencoder blog, the
    # course's); mse: the squared error of the sigmoid outputs
    loss: Literal[RECONSTRUCTION_LOSSES] = "bce"
    # anomaly detection's threshold on a picture's reconstruction error (its MSE): the validation split's normal
    # pictures flagged at this rate (the error's 1 - rate quantile there); zoo predict's verdict uses it
    false_positive_rate: float = Field(0.05, gt=0, lt=1)
    # colourisation (course 004): the network is given the gray picture (ITU-R 601 luma, as Pillow's "L") and
    # rebuilds the colour one; the model takes 1 channel and gives 3 (model.in_channels and out_channels are set)
    colorize: bool = False


class CalibrationConfig(Section):
    # task classification: at the end of training, fit on the validation split temperature scaling (Guo et al.
    # 2017), the conformity scores of prediction sets (zoo predict --coverage) and the unfamiliar score, kept in
    # best.pt and its exports (zoo.metrics.calibration); false: none of them (zoo calibrate adds them later)
    enabled: bool = True
    # the share of familiar (validation) pictures the unfamiliar score lets pass: 1 - this of them are flagged
    familiar_share: float = Field(0.95, gt=0, lt=1)


class Config(Section):
    model: ModelConfig
    data: DataConfig
    task: Literal[TASKS] = "classification"  # multilabel: any number of labels per image (zoo.tasks)
    multilabel: MultilabelConfig = MultilabelConfig()  # task multilabel's decision rule
    reconstruction: ReconstructionConfig = ReconstructionConfig()  # task reconstruction's loss and anomaly threshold
    calibration: CalibrationConfig = CalibrationConfig()  # task classification's temperature, sets, unfamiliar score
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    init: Literal[INITS] = "default"  # weight initialization (zoo.models.weight_init); default: the model's own
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    finetune: FinetuneConfig | None = None  # `zoo finetune` needs it
    sweep: SweepConfig | None = None  # `zoo sweep` reads it: the course's lessons in configs/lessons/

    @model_validator(mode="before")
    @classmethod
    def _pixels_for_reconstruction(cls, data: Any) -> Any:
        """task reconstruction reads [0, 1] pixels: data.normalize defaults to false there (given true, it is
        refused in one line by _check_reconstruction). Colourisation's network takes 1 channel and gives 3:
        model.in_channels and model.out_channels default to them (given others, refused in one line)."""
        if not isinstance(data, dict) or data.get("task") != "reconstruction":
            return data
        if isinstance(data.get("data"), dict) and "normalize" not in data["data"]:
            data = {**data, "data": {**data["data"], "normalize": False}}
        section, model = data.get("reconstruction"), data.get("model")
        if isinstance(section, dict) and section.get("colorize") is True and isinstance(model, dict):
            data = {**data, "model": {"in_channels": 1, "out_channels": 3, **model}}
        return data

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.data.sampler == "balanced" and self.loss.class_weights == "auto":
            # measured: 40 against 8 images, both on: every test image called the rare class (20%, three seeds);
            # either alone: 80-100%
            raise ValueError("data.sampler balanced and loss.class_weights auto each correct the class imbalance; "
                             "together they correct it twice and favour the rare classes: keep one "
                             "(--set loss.class_weights=null, or --set data.sampler=shuffle)")
        if self.optimizer.fused is True and self.optimizer.name == "sgd" and self.train.precision == "16":
            raise ValueError("optimizer.fused: true with train.precision: 16: torch's fused SGD is reported to move "
                             "its momentum on the steps the gradient scaler skips; set optimizer.fused: auto")
        self._check_task()
        self._check_input()
        unfreeze = self.finetune.unfreeze_at_epoch if self.finetune else None
        if unfreeze is not None and unfreeze > self.train.epochs:
            epochs = self.train.epochs
            fix = ("set it to 2 (or remove it)" if epochs == 2
                   else f"set it to 2 to {epochs}, or remove it" if epochs > 2
                   else "remove it (--set finetune.unfreeze_at_epoch=null)")
            raise ValueError(f"finetune.unfreeze_at_epoch {unfreeze} is after the last epoch (train.epochs "
                             f"{self.train.epochs}), so the frozen layers would never train; {fix}")
        return self

    def _check_task(self) -> None:
        """What a task cannot take: a label set has no single class to sample by, mix as torchvision's MixUp does,
        smooth toward, or keep by index; and only a manifest carries several labels per image. A task's own
        settings are read with that task alone (their defaults are in every saved config: not a choice)."""
        for section, default in (("multilabel", MultilabelConfig()), ("reconstruction", ReconstructionConfig())):
            if self.task != section and getattr(self, section) != default:
                raise ValueError(f"{section} is read only with task: {section}; remove it, or set task: {section}")
        if self.task != "reconstruction" and self.data.noise:
            raise ValueError("data.noise is read only with task: reconstruction (a denoising autoencoder); remove it")
        if self.task != "reconstruction" and _model_task(self.model.name) == "reconstruction":
            raise ValueError(f"model {self.model.name} is an autoencoder: it rebuilds the picture; set task: "
                             "reconstruction")
        if self.task == "reconstruction":
            self._check_reconstruction()
        if self.task != "multilabel":
            return
        data, augment = self.data, self.data.augmentation
        refused = [(data.name != "manifest", f"data.name {data.name} has one label per image; multilabel reads "
                                             "data.name: manifest, whose label cells hold several"),
                   (data.sampler == "balanced", "data.sampler balanced draws by class, and an image has several; "
                                                "use loss.class_weights: auto (per-class positive weights)"),
                   (augment is not None and (augment.mixup_alpha > 0 or augment.cutmix_alpha > 0),
                    "data.augment.mixup_alpha and cutmix_alpha mix one label per image; set them to 0"),
                   (self.loss.label_smoothing > 0, "loss.label_smoothing spreads one class's probability over the "
                                                   "others; set it to 0"),
                   (data.classes is not None, "data.classes keeps classes by index; remove it, and leave the labels "
                                              "out of the manifest")]
        for wrong, why in refused:
            if wrong:
                raise ValueError(f"task multilabel: {why}")

    def _check_input(self) -> None:
        """The model reads what the data gives: token ids (data.name text) or pictures. A text model's embedding rows
        are its own vocabulary's words, which another run's data does not share: no fine-tuning from it."""
        from zoo.models.registry import get_model_info, list_models

        try:
            reads = get_model_info(self.model.name).input
        except ZooError:
            return  # model.name's own error
        text = SPECS[self.data.name].modality == "text"
        if reads == "tokens" and not text:
            raise ValueError(f"model {self.model.name} reads sentences as token ids; set data.name: text and "
                             "data.manifest to a .csv or .jsonl file of text and label")
        if text and reads != "tokens":
            raise ValueError(f"data.name text gives sentences as token ids, and {self.model.name} reads pictures; set "
                             f"model.name to a model of sentences: {', '.join(list_models(input='tokens'))}")
        if text and self.finetune is not None:
            raise ValueError("finetune: a text model's word vectors are its own vocabulary's; train it anew, with "
                             "pretrained word vectors (model.vectors) where you have them")

    def _check_reconstruction(self) -> None:
        """What an autoencoder cannot take: its target is the picture, so nothing weighs, mixes or smooths classes,
        and it rebuilds [0, 1] pixels (the sigmoid's range), which normalization would move out of reach."""
        data, augment = self.data, self.data.augmentation
        kind = _model_task(self.model.name)
        refused = [(kind is not None and kind != "reconstruction",
                    f"{self.model.name} is a classifier; an autoencoder rebuilds the picture: autoencoder, "
                    "conv_autoencoder or deep_conv_autoencoder (zoo list)"),
                   (self.loss.class_weights is not None, "loss.class_weights weighs classes, and the target is the "
                                                         "picture; remove it"),
                   (self.loss.label_smoothing > 0, "loss.label_smoothing smooths class targets; set it to 0"),
                   (data.sampler == "balanced", "data.sampler balanced draws by class; set data.sampler: shuffle"),
                   (augment is not None and (augment.mixup_alpha > 0 or augment.cutmix_alpha > 0),
                    "data.augment.mixup_alpha and cutmix_alpha mix labels; set them to 0"),
                   (data.normalize and data.mean is not None, "data.mean and std: an autoencoder rebuilds [0, 1] "
                                                              "pixels, unnormalized; remove them"),
                   (data.normalize, "data.normalize: an autoencoder rebuilds [0, 1] pixels; set data.normalize: "
                                    "false")]
        if self.reconstruction.colorize:
            stored = SPECS[data.name].channels
            model = self.model
            refused += [(stored is not None and stored < 3, f"reconstruction.colorize: {data.name} is stored in gray; "
                                                            "colourisation learns from colour pictures (cifar10, "
                                                            "imagefolder, manifest)"),
                        ((model.in_channels, model.kwargs.get("out_channels")) != (1, 3),
                         "reconstruction.colorize: the network takes the gray picture and gives the colour one; "
                         "remove model.in_channels and model.out_channels")]
        for wrong, why in refused:
            if wrong:
                raise ValueError(f"task reconstruction: {why}")

    @property
    def run_name(self) -> str:
        return self.train.run_name or f"{self.model.name}_{self.data.name}"

    def geometry(self) -> tuple[int, int]:
        """(in_channels, input_size) of the network's input: the config's (model.in_channels, data.input_size),
        else the model's own default from the registry (a token model's: 1 embedding channel, no picture side, 1)."""
        from zoo.models.registry import get_model_info

        info = get_model_info(self.model.name)
        return self.model.in_channels or info.in_channels, self.data.input_size or info.side

    def data_channels(self) -> int:
        """The channels the pictures are read with: the network's input's, except for colourisation, which reads the
        colour picture (3) and gives the network its gray version."""
        return 3 if self.reconstruction.colorize else self.geometry()[0]

    def with_normalization(self, mean: Any, std: Any, channels: int | None = None) -> Config:
        """This config normalizing with `mean` and `std` (a checkpoint's, a weights source's), unless it sets its
        own, normalizes nothing (sentences: no statistics to have), or (`channels` given) the statistics are for
        another channel count: trained weights expect the statistics they were trained with. The one rule for
        inherited statistics; the data set's own are zoo.data.transforms.normalization's."""
        text = SPECS[self.data.name].modality == "text"
        if not self.data.normalize or self.data.mean is not None or mean is None or text:
            return self
        if channels is not None and len(mean) != channels:
            return self
        data = self.data.model_copy(update={"mean": tuple(mean), "std": tuple(std)})
        return self.model_copy(update={"data": data})

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-safe values (paths as text), for config.yaml and checkpoints."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ---- reading YAML ------------------------------------------------------------------------------

MAX_DEPTH = 32  # levels of nesting; a config has 4 or 5 (the document, a section, a key, a list, its items)
# values that aliases may repeat in all, as written out; an alias bomb ("billion laughs", 9 levels of 9 aliases
# in 1 KB) repeats 10^9 of them, and whatever walks the document walks every one
MAX_ALIASED = 10_000


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema's scalars instead of YAML 1.1's, which read
    `2024_01` as 202401, `no` and `off` as False, `010` as 8, `1:30` as 90 and `2024-01-02` as a date.
    Here those stay text (pydantic still reads `no` as False where a key wants a bool), and `1e-3` is a
    float, as YAML 1.2 and every JSON reader have it.

    While composing, which takes time in proportion to the text, it refuses (ZooError naming `source`) what would
    take far more to walk: nesting deeper than MAX_DEPTH (Python's recursion limit, at about 300), aliases that
    repeat more than MAX_ALIASED values in all, and an alias inside the value it names (a loop)."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.depth = 0
        self.sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, levels), as written out, once composed
        self.aliased = 0  # values the aliases so far repeat

    def fetch_flow_collection_start(self, token: type[yaml.tokens.Token]) -> None:
        """`[` or `{`: the scanner checks every open bracket at each token, so 5,000 of them cost it a second
        before the composer would see the first few."""
        if self.flow_level >= MAX_DEPTH:
            self.refuse(f"nested more than {MAX_DEPTH} levels deep", self.get_mark(),
                        "a config is sections of keys, a few levels: flatten it")
        super().fetch_flow_collection_start(token)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        alias = self.peek_event() if self.check_event(yaml.AliasEvent) else None
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.refuse(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark,
                        "a config is sections of keys, a few levels: flatten it")
        node = super().compose_node(parent, index)
        self.depth -= 1
        if alias is not None:
            if id(node) not in self.sizes:
                self.refuse(f"the alias *{alias.anchor} is inside the value it names, a loop", alias.start_mark,
                            "point it at a value written before it")
            self.aliased += self.sizes[id(node)][0]
            if self.aliased > MAX_ALIASED:
                self.refuse(f"its aliases repeat more than {MAX_ALIASED:,} values in all, as an alias bomb does",
                            alias.start_mark, "a config needs far fewer: alias smaller values, or write them out")
        else:
            children = (node.value if isinstance(node, yaml.SequenceNode)
                        else [item for pair in node.value for item in pair] if isinstance(node, yaml.MappingNode)
                        else [])
            sizes = [self.sizes[id(child)] for child in children]
            self.sizes[id(node)] = (1 + sum(values for values, _ in sizes), 1 + max((levels for _, levels in sizes),
                                                                                    default=0))
        if self.depth + self.sizes[id(node)][1] > MAX_DEPTH:  # deeper through aliases than written
            self.refuse(f"nested more than {MAX_DEPTH} levels deep through its aliases", node.start_mark,
                        "a config is sections of keys, a few levels: flatten it")
        return node

    def refuse(self, problem: str, mark: yaml.Mark, fix: str) -> None:
        raise ZooError(f"{self.source}: {problem} (line {mark.line + 1}, column {mark.column + 1}); {fix}")


_YAML_1_1 = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
             "tag:yaml.org,2002:timestamp"}
_Loader.yaml_implicit_resolvers = {first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML_1_1]
                                   for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                              list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"))
_Loader.add_constructor("tag:yaml.org,2002:int",
                        lambda loader, node: int(node.value, 0) if node.value[1:2] in ("o", "x") else int(node.value))
_Loader.add_constructor("tag:yaml.org,2002:float",
                        lambda loader, node: float(node.value.lower().replace(".inf", "inf").replace(".nan", "nan")))


def _read_yaml(text: str, source: str) -> tuple[Any, dict[tuple[str, ...], str], list[str]]:
    """The document in `text`; the text as written of every plain scalar that is not a string (by key path),
    so that a key that takes text (a run name, a path) gets `007` and not 7; and a problem (`source: key ...`)
    for each key written twice in one mapping, naming both lines: YAML loaders keep the last one silently.
    Nesting, aliases and characters that cannot be read are ZooErrors (see _Loader)."""
    try:
        loader = _Loader(text, source)
    except yaml.reader.ReaderError as error:  # a control character; its message says where in two lines
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        raise ZooError(f"{source}: not valid YAML at line {line}, column {column}: the control character "
                       f"{chr(error.character)!r} is not allowed; remove it") from None
    try:
        node = loader.get_single_node()  # parsed once: walked here for repeated keys, then constructed
        written: dict[tuple[str, ...], str] = {}
        twice: list[str] = []
        if node is not None:
            _walk(node, (), written, twice, source)
        return (loader.construct_document(node) if node is not None else None), written, twice
    finally:
        loader.dispose()


def _walk(node: yaml.Node, path: tuple[str, ...], written: dict[tuple[str, ...], str], twice: list[str],
          source: str) -> None:
    """Note each key written twice in one mapping in `twice` (naming both places); record, by key path, the text
    of every plain scalar value that is not a string (an alias's values where the alias puts them)."""
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, yaml.Mark] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            name, mark = ".".join((*path, key.value)), key.start_mark
            if key.value in lines:
                first = lines[key.value]
                where = (f"line {mark.line + 1}, columns {first.column + 1} and {mark.column + 1}"
                         if first.line == mark.line else f"lines {first.line + 1} and {mark.line + 1}")
                twice.append(f"{source}: {name} is written twice ({where}); keep one")
            lines[key.value] = mark
            if isinstance(value, yaml.ScalarNode):
                # null: no value
                if value.style is None and value.tag not in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:null"):
                    written[(*path, key.value)] = value.value
            else:
                _walk(value, (*path, key.value), written, twice, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            _walk(value, (*path, str(index)), written, twice, source)  # mappings inside a list are checked too


def _takes_text(path: tuple[str, ...] | list[str]) -> bool:
    """Whether the key at `path` is text or a path in the schema (a run name, data.root), not a number or a choice."""
    section = _section_at(path)
    field = section.model_fields.get(path[-1]) if section is not None and path else None
    return field is not None and bool(_kinds(field)) and all(kind in (str, Path) for kind in _kinds(field))


def _as_written(raw: Any, written: dict[tuple[str, ...], str]) -> Any:
    """`raw` with the keys that take text given the scalar as written (YAML made a number or a bool of it)."""
    for path, text in written.items():
        if _takes_text(path):
            node = raw
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = text
    return raw


# ---- loading -----------------------------------------------------------------------------------

def parse_overrides(overrides: list[str]) -> list[tuple[list[str], Any]]:
    """`optimizer.lr=0.01` -> (['optimizer', 'lr'], 0.01); values are parsed as YAML scalars or lists (YAML 1.2,
    as in files), and a key that takes text gets the text as written (`--set train.run_name=007`)."""
    parsed = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", key.strip()):
            raise ZooError(f"--set {item!r}: write key.path=value, e.g. --set optimizer.lr=0.01")
        path = key.strip().split(".")
        if not text.strip() and _takes_text(path):  # `--set train.run_id=$SLURM_JOB_ID` with the variable unset
            raise ZooError(f"--set {key.strip()}=: the value is empty (an unset shell variable?); "
                           "give one, or null for none")
        try:
            value, _, twice = _read_yaml(text, f"--set {key.strip()}") if text.strip() else (None, {}, [])
        except yaml.YAMLError:
            value, twice = text, []
        if twice:  # `--set 'optimizer={lr: 1, lr: 2}'`
            raise ConfigError(*twice)
        if value is not None and not isinstance(value, (str, dict, list)) and _takes_text(path):
            value = text.strip()
        parsed.append((path, value))
    return parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`raw` with each override applied; a section given whole (`--set 'optimizer={name: adam}'`) is merged into
    the one there, as its keys one by one would be (null removes a key or section)."""
    for path, value in parse_overrides(overrides):
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif child is True and _takes_section(path[:path.index(part) + 1]):
                child = node[part] = {}  # `augment: true` is the section's defaults
            elif not isinstance(child, dict):
                name, key = ".".join(path[:path.index(part) + 1]), ".".join(path[path.index(part) + 1:])
                if not _takes_section(path[:path.index(part) + 1]):
                    raise ZooError(f"--set {'.'.join(path)}: {part} is a value, not a section")
                raise ZooError(f"--set {'.'.join(path)}: {name} is {child!r}, not a section; give the section whole, "
                               f"e.g. --set '{name}={{{key}: ...}}'")
            node = child
        node[path[-1]] = _merged(node.get(path[-1]), value)
    return raw


def _merged(old: Any, new: Any) -> Any:
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    return {**old, **{key: _merged(old.get(key), value) for key, value in new.items()}}


def _section_at(path: tuple[Any, ...] | list[str]) -> type[BaseModel] | None:
    """The schema's section that holds the key at `path` (Config for a top-level key), or None off the schema."""
    model: type[BaseModel] = Config
    for part in path[:-1]:
        sections = [kind for kind in _kinds(model.model_fields[part])
                    if isinstance(kind, type) and issubclass(kind, BaseModel)] if part in model.model_fields else []
        if not sections:
            return None
        model = sections[0]
    return model


def _section_holding(name: str) -> str | None:
    """`section.name` where one of Config's sections has a key `name` (train.run_name for run_name written at the
    top, or under another section); None where none has, or several do."""
    found = [f"{section}.{name}" for section, field in Config.model_fields.items()
             for kind in _kinds(field) if isinstance(kind, type) and issubclass(kind, BaseModel)
             and name in kind.model_fields]
    return found[0] if len(found) == 1 else None


def _kinds(field: Any) -> list[Any]:
    """A field's types, None left out and Annotated unwrapped: `Path | None` -> [Path]."""
    annotation = field.annotation
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    kinds = [get_args(kind)[0] if get_origin(kind) is Annotated else kind
             for kind in getattr(annotation, "__args__", (annotation,))]
    return [kind for kind in kinds if kind is not type(None)]


def _takes_section(path: list[str]) -> bool:
    """Whether the key at `path` may be a section of the schema (data.augment, train.ema)."""
    section = _section_at(path)
    field = section.model_fields.get(path[-1]) if section is not None else None
    return field is not None and any(isinstance(kind, type) and issubclass(kind, BaseModel) for kind in _kinds(field))


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The valid keys of the section that holds `loc`, for suggesting a near match."""
    section = _section_at(loc)
    return list(section.model_fields) if section is not None else []


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(str(p) for p in error["loc"] if p not in (FLAG, SECTION))  # a flag-or-section key's form
    key = ".".join(loc) or "config"
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(error["loc"][-1]), _fields_at(loc), n=1, cutoff=0.6)
        near = '.'.join(loc[:-1] + (close[0],)) if close else _section_holding(str(error["loc"][-1]))
        return f"{key}: unknown key" + (f"; did you mean {near}?" if near else "")
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", message)
        close = difflib.get_close_matches(str(error.get("input")), choices, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        what = error["loc"][-1] if error["loc"] else "value"  # a builder argument's own check has no location
        return f"{key}: unknown {what} {error.get('input')!r}; choose one of {', '.join(choices)}{hint}"
    if kind == "missing":
        return f"{key}: required"
    if kind == "model_type":  # a value where a section belongs; pydantic would name the class
        keys = _fields_at((*loc, ""))
        return f"{key}: must be a section of keys ({', '.join(keys[:4])}, ...), got {error.get('input')!r}"
    message = message.removeprefix("Value error, ")
    return (f"{key}: {message[0].lower()}{message[1:]} (got {error.get('input')!r})"
            if "input" in error and kind != "value_error" else f"{key}: {message}")


def validate_config(raw: Any, source: str = "config", overrides: list[str] | None = None) -> Config:
    """`raw` validated into a Config. A ConfigError names each problem's key and where it was written: `source`,
    or `--set` for a key that one of `overrides` set (`--set optimizer.lrr: unknown key`, not the file's)."""
    if not isinstance(raw, dict):
        raise ZooError(f"{source}: expected a mapping of sections (model, data, ...), got {type(raw).__name__}")
    given = [".".join(path) for path, _ in parse_overrides(overrides or [])]
    try:
        config = Config.model_validate(raw)
    except ValidationError as error:
        problems = [_describe(e) for e in error.errors()]
        # A check across sections (train.epochs against finetune.unfreeze_at_epoch) names no key: the file and the
        # overrides together made it.
        whole = f"{source} with --set {' '.join(overrides)}" if overrides else source
        lines = [f"{whole}: {problem.removeprefix('config: ')}" if problem.startswith("config: ")
                 else f"--set {problem}" if _set_by(problem, given) else f"{source}: {problem}" for problem in problems]
        lines += _model_problems(_valid(ModelConfig, raw.get("model")), _valid(DataConfig, raw.get("data")), source,
                                 given)  # a section that validates alone is checked now too: all problems at once
        raise ConfigError(*sorted(lines, key=lambda line: line.startswith("--set"))) from None
    if problems := _model_problems(config.model, config.data, source, given):
        raise ConfigError(*problems)
    return config


def _valid(section: type[BaseModel], raw: Any) -> Any:
    """`raw` validated as `section`, or None where it is not valid."""
    try:
        return section.model_validate(raw)
    except ValidationError:
        return None


def _set_by(problem: str, given: list[str]) -> bool:
    """Whether a problem ('key.path: ...') is about a key an override set, a key inside a section it set, or the
    unknown section an override's key made (`--set optimiser.lr=...`)."""
    key, _, text = problem.partition(":")
    section = key.rpartition(".")[0]
    return any(key == name or key.startswith(f"{name}.") or name.startswith(f"{key}.")
               # a key the section needs, missing from the section an override brought (`--set finetune.freeze=...`)
               or (text.strip().startswith("required") and section and name.startswith(f"{section}."))
               for name in given)


def _model_problems(model: ModelConfig | None, data: DataConfig | None, source: str, given: list[str]) -> list[str]:
    """The model name and its builder arguments, checked by building it on the meta device (no memory), and
    data.input_size against the inputs it takes (registered: min_input_size); a problem is named as `--set`'s when
    an override (`given`, key paths) set the key. None for a section that is not valid: nothing to check."""
    import torch

    if model is None:
        return []
    try:
        with torch.device("meta"):
            network = model.build()
    except ZooError as error:
        key = "model.name" if str(error).startswith("unknown model") else "model"
        where = "--set" if _set_by(f"{key}: ", given) else f"{source}:"
        return [f"{where} {key}: {error}"]
    except (TypeError, ValueError, RuntimeError, OverflowError) as error:  # RuntimeError: a size torch refuses
        where = "--set" if _set_by("model: ", given) else f"{source}:"
        return [f"{where} model: {model.name} does not accept these arguments ({str(error).splitlines()[0]})"]
    size = data.input_size if data is not None else None
    if size is None or SPECS[data.name].size == 1:  # xor's two bits are no picture (the run checks its features)
        return []
    from zoo.models.registry import get_model_info

    channels = model.in_channels or get_model_info(model.name).in_channels  # Config.geometry's
    try:
        network.check_input(torch.empty(1, channels, size, size, device="meta"))
    except ZooError as error:
        return [f"{'--set' if _set_by('data.input_size: ', given) else f'{source}:'} data.input_size: {error}"]
    return []


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply `--set` overrides, validate. Raises ZooError naming the key path: a ConfigError
    of one line per problem, keys written twice and the schema's problems together."""
    path = config_file(path)
    try:
        raw, written, twice = _read_yaml(_text(path), str(path))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ZooError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    raw = raw or {}
    try:
        if isinstance(raw, dict):
            raw = _as_written(raw, written)
            raw = apply_overrides(raw, overrides or [])
        config = validate_config(raw, str(path), overrides)
    except ZooError as error:
        if twice:
            raise ConfigError(*twice, *error.lines()) from None
        raise
    if twice:
        raise ConfigError(*twice)
    return config


CHECKPOINTS = (".pt", ".pth", ".ckpt", ".safetensors", ".onnx", ".pt2")  # files where a config is sometimes given


def config_file(path: str | Path) -> Path:
    """The config file `path` names; a ZooError for what else it names: a run directory (its config.yaml, and
    --resume), another folder (its YAML files), a checkpoint, or nothing (with the near name of a YAML file
    beside it)."""
    path = Path(path)
    if path.is_dir():
        if (path / "config.yaml").is_file() and any((path / name).exists() for name in ("checkpoints", "launch.json")):
            raise ZooError(f"{path} is a run directory, not a config file; its config is {path / 'config.yaml'} "
                           f"(zoo train --resume {path} continues the run)")
        found = sorted(file.name for file in path.iterdir() if file.suffix in (".yaml", ".yml") and file.is_file())
        raise ZooError(f"{path} is a folder, not a config file; give " + (
            f"one of its {len(found)} YAML files, e.g. {path / found[0]}" if found
            else "a YAML file, e.g. configs/lenet5_digits.yaml"))
    if not path.is_file():
        beside = {file.stem: file.name for file in path.parent.iterdir() if file.suffix in (".yaml", ".yml")} \
            if path.parent.is_dir() else {}  # by stem: every name ends in .yaml, which would make all of them near
        near = [str(path.parent / beside[stem]) for stem in difflib.get_close_matches(path.stem, beside, n=3,
                                                                                       cutoff=0.6)]
        hint = f"did you mean {', '.join(near)}?" if near else "the shipped ones are in configs/"
        raise ZooError(f"config file {str(path)!r} not found; {hint}")
    if path.suffix.lower() in CHECKPOINTS:
        raise ZooError(f"{path} is a checkpoint or an export, not a config; zoo train --resume {path} continues "
                       "the run of a checkpoint")
    return path


def _text(path: Path) -> str:
    """The file's text, read as UTF-8 (YAML's encoding; not the locale's); a ZooError naming the first byte
    that is not."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ZooError(f"{path}: cannot be read ({error.strerror or error}); check its permissions") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise ZooError(f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at line {line}, column {column}); "
                       "save it as UTF-8") from None
