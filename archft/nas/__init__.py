"""Networks of a space: parameter remapping and the weight-sharing supernet, its subnets and
the freezing outside the scope. Imports `archft.core`, `archft.models` and `archft.space`."""

from archft.nas.remap import (
    hidden_channel_order,
    remap_conv,
    remap_depth,
    remap_kernel,
    remap_mbconv,
)
from archft.nas.supernet import (
    ChoiceLayer,
    Supernet,
    build_scoped_base,
    build_subnet,
    build_supernet,
    freeze_outside,
    unwrap,
)

__all__ = ["ChoiceLayer", "Supernet", "build_scoped_base", "build_subnet", "build_supernet",
           "freeze_outside", "hidden_channel_order", "remap_conv", "remap_depth", "remap_kernel",
           "remap_mbconv", "unwrap"]
