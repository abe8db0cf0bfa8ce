"""Model zoo: every image model is a :class:`FedModel` (``features`` + linear ``head``)."""

from fedsim.models.base import FedModel
from fedsim.models.zoo import build_model, num_params

__all__ = ["FedModel", "build_model", "num_params"]
