"""Membership inference alone: ``experiments.audit`` without the released-set analysis and the
theory (one study driver for both; see ``python -m experiments.mia --help``)."""

from __future__ import annotations

from dcjax import cli
from experiments import audit


def main(argv: list[str] | None = None) -> dict:
  return audit.main(argv, membership_only=True)


def run() -> None:
  """The command line (``python -m experiments.mia``, the console script ``dcjax-mia``)."""
  cli.entry_point(main, prog="experiments.mia")


if __name__ == "__main__":
  run()
