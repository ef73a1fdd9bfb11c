"""The base every config model shares."""

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    """A block of the config file.

    extra="forbid" turns a typo into an error instead of a silently ignored key; frozen
    because a loaded config is shared by every worker task and replaced whole on reload.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
