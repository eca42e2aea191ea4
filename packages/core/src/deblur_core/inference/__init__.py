"""Running a deblurring network on images of any size: device, memory budget and tile plan, and the network.

Every caller (folders and videos, single images, evaluation, export's check) runs networks through
:class:`Deblurrer` (from :func:`load_deblurrer`) or :func:`deblur_tensor`, and so shares one tiling policy:
a frame runs whole when its activations fit the device's memory budget (:func:`memory_budget`), else alone
in the grid of overlapping tiles that fits it with the fewest pixels (:func:`plan_batch`), the tiles blended
with smooth weights so no seam shows. An explicit ``tile`` overrides the plan.
"""

from .deblurrer import NON_FINITE_OUTPUT, Deblurrer, bytes_per_pixel, deblur_tensor, load_deblurrer, weights_source
from .device import CPU_MEMORY_BUDGET, memory_budget, resolve_device
from .tiles import TilePlan, plan_batch, tile_starts

__all__ = ["Deblurrer", "resolve_device", "load_deblurrer", "deblur_tensor", "tile_starts", "bytes_per_pixel",
           "CPU_MEMORY_BUDGET", "NON_FINITE_OUTPUT", "TilePlan", "memory_budget", "plan_batch", "weights_source"]
