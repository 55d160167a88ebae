"""The ``fdaref`` command line (installed as fdaref.cli)."""
