"""Errors a user can fix. They carry a message that names the culprit; no traceback needed."""


class RcmError(Exception):
    """A problem with input, configuration or a source that the user can act on."""


class MetadataError(RcmError):
    """A metadata file is wrong; the message names file, line and column."""


class SourceError(RcmError):
    """A source database could not be read; the message names datasource and table."""
