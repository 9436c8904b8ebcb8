"""``python -m pathsynth`` (and ``torchrun -m pathsynth``) run the CLI."""

from pathsynth.cli import main

if __name__ == "__main__":
    main()
