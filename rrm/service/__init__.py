"""Application layer: use cases behind the CaseEngine facade, and the ports."""
