"""Layers and models on the :mod:`fdaref.autodiff` engine (backend independent)."""
from .layers import (AvgPool2d, BatchNorm, BinaryConv2d, BinaryLinear, Conv2d, Flatten, GlobalAvgPool, Linear,
                     MaxPool2d, PReLU, ReLU, Sequential, binary_layers, set_schedule)
from .models import BasicBlock, ResNet20, resnet20, tiny, vgg_small
from .module import Module
from .summary import Summary, count_params, summary

__all__ = ["Module", "Conv2d", "BinaryConv2d", "Linear", "BinaryLinear", "BatchNorm", "PReLU", "ReLU",
           "MaxPool2d", "AvgPool2d", "GlobalAvgPool", "Flatten", "Sequential", "set_schedule", "binary_layers",
           "resnet20", "vgg_small", "tiny", "ResNet20", "BasicBlock", "summary", "count_params", "Summary"]
