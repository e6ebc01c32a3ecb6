"""saga-enhance: low-light photo enhancement with SAGA (selective adaptive gating) linear attention.

    import enhance
    model = enhance.load_model()                  # the default model with its shipped weights
    bright = enhance.enhance_image(model, photo)  # H x W x 3 uint8 / uint16 / float in [0, 1]
    brighter = enhance.adjust_exposure(bright, 0.5)  # half a stop more light, as `--exposure 0.5`
"""

from .exposure import adjust_exposure
from .inference import enhance_image
from .models import create_model, list_models
from .weights import UntrainedModelError, WeightsError, load_model

__version__ = "0.1.0"
__all__ = ["enhance_image", "adjust_exposure", "create_model", "list_models", "load_model", "WeightsError",
           "UntrainedModelError"]
