"""``python -m histosynth`` runs the command line."""

from histosynth.cli.main import main

if __name__ == "__main__":
    main()
