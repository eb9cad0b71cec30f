"""Exceptions raised across mlsd; each carries a message meant for the person who hit it."""

from __future__ import annotations


class MlsdError(Exception):
    """Base class of every mlsd error."""


class ValidationError(MlsdError):
    """Input that does not fit a schema; the message names the field and, where known, the row."""


class DataNotFoundError(MlsdError):
    """A dataset file is missing or does not match its published checksum."""


class DefinitionError(MlsdError):
    """A feature or event definition that cannot work (unknown entity, duplicate name, bad window)."""


class UnknownEntityError(MlsdError):
    """A well-formed request about an entity the service does not know (an HTTP 404)."""


class StoreUnavailableError(MlsdError):
    """A store that cannot be trusted now: unreachable, or restarted without the data it held."""
