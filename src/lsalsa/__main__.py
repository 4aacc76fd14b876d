"""``python -m lsalsa``: the ``lsalsa`` command, for launchers that start a module on every rank
(``torchrun --nproc-per-node K -m lsalsa train CONFIG``)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
