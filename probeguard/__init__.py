"""probeguard's composition root: the `probeguard` command wires the library, the service and the training commands.

Nothing in `detector/` imports `service/` or `training/`; this package is the one place that sees all three.
"""
