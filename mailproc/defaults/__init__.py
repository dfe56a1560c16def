"""The rules, templates and example mailproc.ini that ship inside the package.

A site that installs mailproc with pip has no checkout to copy rules from, so
the defaults travel with the code. Their editable source stays where the
project keeps it, the repository's top-level `rules/`, `templates/` and
`mailproc.ini`: this package links to them, so a source checkout (and the
editable install the tests use) reads those very files, and a built wheel
carries copies of them (package-data in pyproject.toml). They are found at run
time with importlib.resources, wherever the package was installed.

A site changes single files, not the whole set: `[mailproc] rules` and
`[mailproc] templates` name directories whose files replace the shipped ones
of the same name (`in_force` says which file wins and why), so a site that
changes only priority.toml keeps getting the rest of the rules as shipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mailproc.errors import ConfigError

# Every rule file mailproc reads, in the order the pipeline uses them.
RULE_FILES = ("screening.toml", "classification.toml", "priority.toml", "routing.toml", "workflow.toml",
              "sla.toml", "survey.toml", "help.toml")
# What makes a file part of each set; anything else in a directory (README.md, an editor's backup) is ignored.
PATTERNS = {"rules": "*.toml", "templates": "*.j2"}


def shipped(name: str) -> Path:
    """The shipped `rules` or `templates` directory, or the example `mailproc.ini`.

    Resolved, so that messages name the real file (in a source checkout: the
    repository's own, not the link in this package).
    """
    resource = resources.files(__name__).joinpath(name)
    if not isinstance(resource, Path):  # a zipped install: nothing on disk to read or point at
        raise ConfigError(f"mailproc's shipped {name} are not files on disk (installed as a zip?); "
                          f"install mailproc unpacked, e.g. with pip")
    return resource.resolve()


@dataclass(frozen=True)
class InForce:
    """One rule file or template as mailproc will use it, and where it comes from."""

    name: str
    path: Path
    origin: str  # "shipped"; "override": the site's file replaces the shipped one; "added": only the site has it


def in_force(kind: str, override: Path | None) -> list[InForce]:
    """Every file of `kind` ("rules" or "templates") in force, by name: the site's
    file where `override` has one of that name, else the shipped one."""
    pattern = PATTERNS[kind]
    base = shipped(kind)
    files = {p.name: InForce(p.name, p, "shipped") for p in base.glob(pattern)}
    if override is not None:
        if not override.is_dir():
            raise ConfigError(f"{kind} directory not found", file=str(override))
        for path in override.glob(pattern):
            origin = "override" if path.name in files else "added"
            files[path.name] = InForce(path.name, path, origin)
    return [files[name] for name in sorted(files)]
