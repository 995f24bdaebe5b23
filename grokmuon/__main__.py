"""`python -m grokmuon ...` is `grokmuon ...`."""
from .cli import main

main()
