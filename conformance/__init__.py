"""The conformance suite: checks any op table against the fdaref reference."""
