"""edgecnn: fine-tune, quantize and verify small image classifiers for edge devices."""

__version__ = "0.1.0"
