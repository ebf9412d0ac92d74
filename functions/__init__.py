"""The admin HTTP functions: one module per action, routed by ``functions.app``."""
