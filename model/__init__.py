"""The independent model of the FD lifecycle (filled by the model issue)."""
