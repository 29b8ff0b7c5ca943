"""`pipeline <command>`: one small module per wing owns its commands; `entry` assembles them.

Heavy libraries load inside commands so that `pipeline --help` stays fast.
"""

from pipeline.cli.entry import app, main

__all__ = ["app", "main"]
