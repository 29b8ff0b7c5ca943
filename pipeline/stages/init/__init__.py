"""`pipeline init`: point the template at a team's own table in one command.

inspect (pure: each column's role, dtype and reason), plan (pure: fairness groups, the drift
simulation's columns, knobs sized by the table), render (pure: the text of every file) and
apply (read the table or query, check everything, then write all files or none).
"""

from pipeline.stages.init.apply import Request, Result, run
from pipeline.stages.init.inspect import InitError, Options

__all__ = ["InitError", "Options", "Request", "Result", "run"]
