"""Backends: implementations of the op table (fdaref.optable.OpTable). They never import each other."""
