"""`python -m lzq ...` runs the lzq command line."""

from lzq.cli import main

main()
