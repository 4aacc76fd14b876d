"""Learned encoders: solvers unrolled into trainable networks (Section 4.2)."""
from ._base import grow
from .io import ENCODERS, load_encoder, save_encoder
from .lista import LISTA
from .lsalsa import LSALSA

__all__ = ["ENCODERS", "LISTA", "LSALSA", "grow", "load_encoder", "save_encoder"]
