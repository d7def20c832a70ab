"""`python -m cnnlab` is `cnnlab` (and what torchrun runs: `torchrun ... -m cnnlab train ...`)."""
from .cli import entry

entry()
