"""The networks, one file per family; importing a family's file registers its builders with zoo.models.registry.

    model = zoo.create_model("resnet18", num_classes=10)  # zoo.models.registry imports every family first
    help(zoo.models.resnet.resnet18)  # the paper, default input size and reference parameter count

Every model is a Classifier or, for task reconstruction, an Autoencoder (zoo.models.base; the registry's
ModelInfo.task says which). A Classifier's `forward(x)` returns class logits, `forward_features` and `forward_head`
split it, `reset_classifier(n)` replaces the head, and inputs below `min_input_size` fail before any layer runs.
An Autoencoder's `forward(x)` returns the picture's pixel logits: `decode(encode(x))`, through its code.
Importing this package imports no torch and no family; zoo.models.registry loads the families listed in
FAMILY_MODULES when a model is first looked up.

    registry.py     register_model, create_model, list_models, get_model_info: the builders and their papers
    base.py         Classifier (AuxClassifier: with auxiliary heads) and Autoencoder: the interfaces above, first_conv,
                    and initialization that keeps the layers' own draws
    layers.py       the ACTIVATIONS table and activation_layer; shared blocks: SqueezeExcite, conv_act, FitAvgPool2d
    weight_init.py  the initialization schemes a config can name (init_weights, SCHEMES); imports torch lazily
    lenet.py        LeNet-5 (LeCun et al. 1998)
    alexnet.py      AlexNet (2012), its one-weird-trick version (torchvision's alexnet) and ZFNet
    vgg.py          VGG 11, 13, 16 and 19, with and without batch normalization
    googlenet.py    GoogLeNet (Inception v1) with its optional auxiliary heads
    inception.py    Inception v3 (Szegedy et al. 2016): factorized and asymmetric convolutions, one auxiliary head
    densenet.py     DenseNet 121, 161, 169 and 201 (ImageNet) and the CIFAR DenseNet-BC (k = 12, depth 100)
    mobilenet.py    MobileNetV2 (inverted residuals) and MobileNetV3 large and small (hard-swish, SE)
    textcnn.py      Kim's (2014) convolutional network for sentence classification
    resnet.py       ResNet 18-152 (ImageNet) and 20-110 (CIFAR-10), SE as a block option
    senet.py        SE-ResNet 18-152: ResNet builders with SE in every block
    teaching.py     the course's MLP (XOR, MNIST) and small MNIST CNN
    autoencoder.py  the course's autoencoders: dense and convolutional for digits, a deeper one for colour pictures
"""

from __future__ import annotations

import importlib

# the files that register builders
FAMILY_MODULES = ("alexnet", "autoencoder", "densenet", "googlenet", "inception", "lenet", "mobilenet", "resnet",
                  "senet", "teaching", "textcnn", "vgg")

__all__ = ["FAMILY_MODULES", "Autoencoder", "Classifier"]


def __getattr__(name: str):
    if name in ("Autoencoder", "Classifier"):
        from zoo.models import base

        return getattr(base, name)
    # zoo.models.resnet without importing it first
    if name in {*FAMILY_MODULES, "base", "layers", "registry", "weight_init"}:
        return importlib.import_module(f"zoo.models.{name}")
    raise AttributeError(f"module 'zoo.models' has no attribute {name!r}")
