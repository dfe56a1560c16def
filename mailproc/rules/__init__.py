"""The rule files: every rule set, read once at start-up and on SIGHUP.

One module per rule file turns it into typed rules (`screening`,
`classification`, `priority`, `routing`, `workflow`, `sla`); `reader` reads
TOML with errors that name the file and line, and finds the file in force
(the site's override, else the shipped one); `matching` is how the
conditions of classification, priority and routing rules test a mail.

The stages only apply rules, so this package imports no stage: a stage, the
context and the CLI may all import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

from mailproc.rules.classification import Classification, load_classification
from mailproc.rules.priority import PriorityRules, load_priority
from mailproc.rules.reader import TomlLines, TomlTable, check_names, compile_pattern, read_toml, rule_files
from mailproc.rules.routing import Routing, load_routing
from mailproc.rules.screening import ScreeningRules, load_screening
from mailproc.rules.sla import Sla, load_sla
from mailproc.rules.help import HelpArticles, load_help
from mailproc.rules.survey import Survey, load_survey
from mailproc.rules.workflow import Workflow, load_workflow

__all__ = ["Rules", "load_rules", "rule_files", "read_toml", "TomlLines", "TomlTable", "check_names",
           "compile_pattern"]


@dataclass(frozen=True)
class Rules:
    """Every rule set, typed. Filled by `load_rules`."""
    screening: ScreeningRules
    classification: Classification
    priority: PriorityRules
    routing: Routing
    workflow: Workflow
    sla: Sla
    survey: Survey
    help: HelpArticles


def load_rules(directory: Path | None = None, timezone: tzinfo | None = None) -> Rules:
    """Every rule set, each from the site's directory if it has that file, else as shipped."""
    files = rule_files(directory)
    return Rules(
        screening=load_screening(files["screening.toml"]),
        classification=load_classification(files["classification.toml"]),
        priority=load_priority(files["priority.toml"]),
        routing=load_routing(files["routing.toml"]),
        workflow=load_workflow(files["workflow.toml"]),
        sla=load_sla(files["sla.toml"], timezone),
        survey=load_survey(files["survey.toml"]),
        help=load_help(files["help.toml"]),
    )
