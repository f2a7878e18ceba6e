"""`python -m emolens ...` (and `torchrun -m emolens train ...`)."""

import sys

from emolens.cli import main

if __name__ == "__main__":
    sys.exit(main())
