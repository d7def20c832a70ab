"""`python -m cnnlab` is `cnnlab` (and what torchrun runs: `torchrun ... -m cnnlab train ...`)."""
import sys

from .cli import main

sys.exit(main())
