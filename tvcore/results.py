"""The names of records, baselines, the gate and record comparison under one roof,
for code written against it; each idea lives in its own module:
:mod:`tvcore.records`, :mod:`tvcore.baselines`, :mod:`tvcore.gate`,
:mod:`tvcore.compare`."""

from __future__ import annotations

from .baselines import (BASELINE_FIELDS, BASELINE_FORMAT, FALSE_ALARM_RATE, HEADLINES, ROLES, SINGLE_SEED_FIELDS,
                        SINGLE_SEED_FORMAT, TOLERANCE_RULE, TOLERANCE_RULES, UNTOUCHED_PREFIX, UPDATE_COMMAND,
                        baseline_from_record, baseline_from_records, central_seed, directions, headline_specs,
                        is_seeded, prediction_factor, read_baseline, resolve_headline, sampling_floor,
                        seed_tolerance, tolerance, under_current_rule, validate_baseline)
from .compare import Agreement, check_comparable, compare_records
from .gate import EXACT, Finding, failures, gate, judge, measure, reported, suspicious
from .records import (RECORD_FIELDS, RECORD_FORMAT, environment, finalize, fingerprint, git_state, read_json,
                      read_record, same_hardware, validate_record, write_json)

__all__ = ["Agreement", "BASELINE_FIELDS", "BASELINE_FORMAT", "EXACT", "FALSE_ALARM_RATE", "Finding", "HEADLINES",
           "RECORD_FIELDS", "RECORD_FORMAT", "ROLES", "SINGLE_SEED_FIELDS", "SINGLE_SEED_FORMAT", "TOLERANCE_RULE",
           "TOLERANCE_RULES", "UNTOUCHED_PREFIX", "UPDATE_COMMAND", "baseline_from_record",
           "baseline_from_records", "central_seed", "check_comparable", "compare_records", "directions",
           "environment", "failures", "finalize", "fingerprint", "gate", "git_state", "headline_specs",
           "is_seeded", "judge", "measure", "prediction_factor", "read_baseline", "read_json", "read_record",
           "reported", "resolve_headline", "same_hardware", "sampling_floor", "seed_tolerance", "suspicious",
           "tolerance", "under_current_rule", "validate_baseline", "validate_record", "write_json"]
