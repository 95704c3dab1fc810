"""What every definition model shares: strict shapes (an unknown key is an error, never ignored)
and one spelling of an id, so a typo in a file is found at load and an id is valid everywhere."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

ID_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
ID_RE = re.compile(ID_PATTERN)


class StrictModel(BaseModel):
    """A definition's shape: unknown keys are refused and loaded values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
