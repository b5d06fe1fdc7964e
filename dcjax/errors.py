"""Error kinds the command-line entry points map to exit codes.

A ``ValueError`` or ``TypeError`` is bad input (exit 2, like a usage error). A
``RuntimeRefusal`` is a bad state found at run time (a directory of someone else's, a stage of
another configuration, a corrupt artefact): exit 1. It subclasses ``ValueError`` so that library
callers can catch every refusal of input or state in one place.
"""


class RuntimeRefusal(ValueError):
  """Refused because of what is on disk or in the data, not because of a flag's value."""

  exit_code = 1
