"""Data: image sources, patches, MCA mixtures, and fetching the offline data sets.

Sources (``load_images(name, split)``): "mnist", "mnist-5k", "fashion-mnist" (IDX files),
"cifar10" (python pickles), "asirra" (the cats and dogs folder in the data directory), "natural"
(photos shipped in wheels: the offline stand-in for ASIRRA and CIFAR-10) and "folder" (any image
folder). Data directory: ``data_dir``, else
``$LSALSA_DATA``, else ``<repository>/data`` (``~/.cache/lsalsa`` outside a checkout); fill it
with ``scripts/fetch_data.sh`` or :func:`fetch`.
"""
from .cifar import read_batch as read_cifar_batch
from .fetching import fetch
from .idx import read_idx
from .mixtures import Mixture, digits_over_photo, mix, mnist_natural
from .natural import POOL as NATURAL_POOL
from .natural import TEST_IMAGES as NATURAL_TEST_IMAGES
from .patches import assemble_patches, extract_patches
from .paths import ENV_VAR, default_data_dir
from .sources import SOURCES, list_sources, load_images, locate_source

__all__ = [
    "load_images", "locate_source", "list_sources", "SOURCES", "default_data_dir", "ENV_VAR", "fetch",
    "read_idx", "read_cifar_batch", "NATURAL_POOL", "NATURAL_TEST_IMAGES",
    "extract_patches", "assemble_patches", "Mixture", "mix", "mnist_natural", "digits_over_photo",
]
