"""Pretrained bases: the registry (`BaseSpec`, `build_base`) and the MBConv building blocks.
Imports `archft.core` only."""

from archft.models.mbconv import (
    Conv2dSame,
    EfficientNetLite0,
    MBConv,
    mbconv_from_torchvision,
)
from archft.models.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BaseSpec,
    Preprocessing,
    build_base,
    get_base,
    get_submodule_parent,
    list_bases,
    load_weights,
    register_base,
    remap_lite0_keys,
    replace_head,
    run_steps,
    scope_start,
)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "BaseSpec", "Conv2dSame", "EfficientNetLite0",
           "MBConv", "Preprocessing", "build_base", "get_base", "get_submodule_parent",
           "list_bases", "load_weights", "mbconv_from_torchvision", "register_base",
           "remap_lite0_keys", "replace_head", "run_steps", "scope_start"]
