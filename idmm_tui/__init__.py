"""idmm: train Vision Transformers from scratch on small datasets with IDMM.

IDMM = parametric Instance Discrimination with Multi-crop and CutMix
("Training Vision Transformers with Only 2040 Images").
"""

__version__ = "0.2.0"
