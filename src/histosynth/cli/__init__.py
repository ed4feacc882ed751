"""The ``histosynth`` command line: thin click commands, one file each, heavy imports inside."""
