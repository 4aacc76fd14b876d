"""Learned encoders: solvers unrolled into trainable networks (Section 4.2)."""
from .io import ENCODERS, load_encoder, save_encoder
from .lista import LISTA
from .lsalsa import LSALSA

__all__ = ["ENCODERS", "LISTA", "LSALSA", "load_encoder", "save_encoder"]
