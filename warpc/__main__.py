"""`python -m warpc ...` = the `warpc` command (what torchrun's `-m warpc` and `warpc train --nproc` start)."""
from .cli import main

if __name__ == "__main__":
    main()
