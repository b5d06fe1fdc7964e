"""The command lines agree with each other: help for every flag, one boolean style, known sets
checked by argparse, one program name in errors, a default output directory per study."""

import argparse
import dataclasses

import pytest

from dcjax.audit import get_preset
from experiments import audit, condense, prepare_data, train

PARSERS = {"audit": audit.build_parser, "mia": lambda: audit.build_parser(membership_only=True),
           "condense": condense.build_parser, "train": train.build_parser,
           "prepare_data": prepare_data.build_parser}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_flag_has_help_and_booleans_read_flag_or_no_flag(name):
  parser = PARSERS[name]()
  missing, store_true = [], []
  for action in parser._actions:  # pylint: disable=protected-access
    if not action.option_strings or isinstance(action, argparse._HelpAction):  # pylint: disable=protected-access
      continue
    text = (action.help or "").strip()
    if not text or text.startswith("("):  # nothing but "(default ...)"
      missing.append(action.option_strings[0])
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):  # pylint: disable=protected-access
      store_true.append(action.option_strings[0])
  assert not missing, f"flags without help: {missing}"
  assert not store_true, f"booleans must be --flag / --no-flag: {store_true}"


def test_known_sets_are_checked_by_argparse_under_one_program_name(capsys):
  with pytest.raises(SystemExit):
    audit.main(["--canary-kind", "loud"])
  err = capsys.readouterr().err
  assert err.startswith("experiments.audit: error: argument --canary-kind: invalid choice")
  with pytest.raises(SystemExit):
    train.main(["--sampling", "random"])
  assert capsys.readouterr().err.startswith("experiments.train: error: argument --sampling")


def test_the_default_output_directory_follows_the_fields_that_define_the_runs():
  quick = get_preset("quick")
  assert audit.default_out("audit", "quick", quick) == "runs/audit/quick"
  # an analysis field leaves the runs, and so the directory, as they are
  assert audit.default_out("audit", "quick", dataclasses.replace(
      quick, attacks="loss", primary_attack="loss")) == "runs/audit/quick"
  eight = audit.default_out("audit", "quick", dataclasses.replace(quick, runs=8))
  assert eight.startswith("runs/audit/quick-") and eight != audit.default_out(
      "audit", "quick", dataclasses.replace(quick, runs=12))
