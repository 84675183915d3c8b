"""zoo.models.registry: list_models, create_model, and what each registration records and checks."""

import inspect

import pytest

import zoo
from zoo.models.registry import ParamReference, get_model_info, register_model

FAMILIES = {"lenet", "alexnet", "zfnet", "vgg", "googlenet", "resnet", "senet", "mlp", "cnn", "autoencoder", "densenet",
            "inception", "mobilenet", "textcnn"}
AUTOENCODERS = ["autoencoder", "conv_autoencoder", "deep_conv_autoencoder"]


def test_list_models_is_sorted_and_covers_every_family():
    names = zoo.list_models()
    assert names == sorted(names)
    assert {get_model_info(n).family for n in names} == FAMILIES
    for expected in ["lenet5", "alexnet", "zfnet", "vgg16", "googlenet", "resnet18", "resnet152",
                     "resnet20", "resnet110", "se_resnet50", "mlp", "mnist_cnn"]:
        assert expected in names


def test_list_models_filters_with_fnmatch_wildcards():
    assert zoo.list_models("resnet1*") == ["resnet101", "resnet110", "resnet152", "resnet18"]
    assert zoo.list_models("vgg16*") == ["vgg16", "vgg16_bn"]
    assert zoo.list_models("se_resnet?0") == ["se_resnet50"]
    assert zoo.list_models("nothing*") == []
    assert zoo.list_models("ResNet1*") == zoo.list_models("resnet1*") and zoo.list_models("VGG16_BN") == ["vgg16_bn"]


def test_list_models_filters_by_task():
    classifiers, autoencoders = zoo.list_models(task="classification"), zoo.list_models(task="reconstruction")
    assert autoencoders == AUTOENCODERS and "resnet18" in classifiers and "autoencoder" not in classifiers
    assert sorted(classifiers + autoencoders) == zoo.list_models()  # every model has one task
    assert zoo.list_models("*conv*", task="reconstruction") == AUTOENCODERS[1:]
    assert zoo.list_models("resnet1*", task="reconstruction") == []
    with pytest.raises(zoo.ZooError,
                       match=r"^unknown task 'segmentation'; choose one of classification, reconstruction$"):
        zoo.list_models(task="segmentation")


def test_a_reconstruction_model_has_no_classes_and_says_its_task():
    for name in AUTOENCODERS:
        info = get_model_info(name)
        assert (info.task, info.num_classes, info.family) == ("reconstruction", 0, "autoencoder")
        assert "reconstruction (no classes)" in inspect.getdoc(info.builder) and " classes." not in info.describe()
        assert info.min_input_size == zoo.create_model(name).min_input_size  # built with num_classes=0
    assert "Default input: 3x224x224, 1000 classes." in get_model_info("resnet18").describe()
    assert get_model_info("resnet18").task == "classification"


def test_an_unknown_task_fails_at_import():
    paper = get_model_info("lenet5").paper
    with pytest.raises(ValueError, match="unknown task 'detection'"):
        @register_model(family="lenet", paper=paper, input_size=(1, 32, 32), task="detection")
        def lenet_detector(num_classes: int = 1000, in_channels: int = 1):
            raise AssertionError("never built")
    assert "lenet_detector" not in zoo.list_models()


def test_every_model_records_its_paper_and_sizes():
    for name in zoo.list_models():
        info = get_model_info(name)
        assert info.paper.authors and info.paper.title and info.paper.link
        assert 1980 <= info.paper.year <= 2019  # MobileNetV3 (Howard et al. 2019) the latest
        if info.input == "tokens":  # a sentence of L token ids (zoo.models.registry.INPUTS)
            (length,) = info.input_size
            assert 1 <= info.min_input_size <= length and info.in_channels == 1
            continue
        channels, height, width = info.input_size
        assert channels in (1, 3) and height == width
        assert 1 <= info.min_input_size <= height
        if info.reference is not None:
            assert info.reference.count > 0 and info.reference.source


def test_unknown_name_suggests_the_closest_names():
    with pytest.raises(zoo.ZooError, match=r"unknown model 'resnet19'; did you mean resnet18"):
        zoo.create_model("resnet19")
    with pytest.raises(zoo.ZooError, match="zoo list"):
        zoo.create_model("transformer")


def test_unknown_builder_argument_is_a_zoo_error():
    with pytest.raises(zoo.ZooError, match=r"resnet18 .*'widht'"):
        zoo.create_model("resnet18", widht=2)


def test_duplicate_registration_fails_at_import():
    paper = get_model_info("lenet5").paper
    with pytest.raises(ValueError, match="registered twice"):
        @register_model(family="lenet", paper=paper, input_size=(1, 32, 32))
        def lenet5(**kwargs):  # noqa: F811  (the point of the test)
            raise AssertionError("never built")


def test_a_builder_whose_defaults_are_not_the_papers_fails_at_import():
    paper = get_model_info("lenet5").paper
    with pytest.raises(ValueError, match="num_classes defaults to 1000; the registry says 10"):
        @register_model(family="lenet", paper=paper, input_size=(1, 32, 32), num_classes=10)
        def lenet_with_wrong_defaults(num_classes: int = 1000, in_channels: int = 1):
            raise AssertionError("never built")
    assert "lenet_with_wrong_defaults" not in zoo.list_models()


def test_every_builder_is_typed_with_the_papers_defaults_and_cites_the_paper():
    for name in zoo.list_models():
        info = get_model_info(name)
        signature = inspect.signature(info.builder)
        assert signature.parameters["num_classes"].default == info.num_classes
        assert signature.parameters["in_channels"].default == info.in_channels
        assert signature.return_annotation is not inspect.Signature.empty
        assert info.paper.cite() in inspect.getdoc(info.builder)


def test_create_model_passes_classes_and_channels():
    model = zoo.create_model("resnet20", num_classes=7, in_channels=1)
    assert model.fc.out_features == 7 and model.conv1.in_channels == 1
    assert model.name == "resnet20"
    info = get_model_info("lenet5")
    default = zoo.create_model("lenet5")
    assert default.num_classes == info.num_classes == 10


@pytest.mark.parametrize(("reference", "computed", "matches"), [
    (ParamReference(61_706, "exact"), 61_706, True),
    (ParamReference(61_706, "exact"), 61_707, False),
    (ParamReference(270_000, "0.27M", precision=10_000), 269_722, True),
    (ParamReference(270_000, "0.27M", precision=10_000), 264_999, False),
    (ParamReference(1_700_000, "1.7M", precision=100_000), 1_727_962, True),
])
def test_param_reference_compares_at_its_published_precision(reference, computed, matches):
    assert reference.matches(computed) is matches
