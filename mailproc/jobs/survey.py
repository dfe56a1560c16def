"""(being built)"""

from __future__ import annotations

from mailproc.due import Planned


def plan(ctx, case) -> list[Planned]:
    return []


RUN: dict = {}
