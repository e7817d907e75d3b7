"""layerwise: layer-by-layer statistics of BERT-like encoders, before and after fine-tuning."""

__version__ = "0.1.0"

from .core.errors import LayerwiseError  # noqa: E402

__all__ = ["LayerwiseError", "__version__"]
