"""Importing this package registers every family's builders with zoo.registry."""

from zoo.models import alexnet, googlenet, lenet, resnet, senet, teaching, vgg  # noqa: F401
from zoo.models.base import Classifier

__all__ = ["Classifier"]
