"""Errors a user can fix. They carry a message that names the culprit; no traceback needed."""


class RcmError(Exception):
    """A problem with input, configuration or a source that the user can act on."""


class MetadataError(RcmError):
    """A metadata file is wrong; the message names file, line and column."""


class SourceError(RcmError):
    """A source database could not be read; the message names datasource and table."""


class FileRejected(RcmError):
    """The file as a whole cannot be ingested; the message says why.

    Bytes of the file quoted in the message that are not UTF-8 show as `\\xNN`, so the reason
    can always be written to the `.error.txt`, the audit log and the UI.
    """

    def __init__(self, message: str) -> None:
        raw = message.encode("utf-8", "surrogateescape")
        super().__init__(raw.decode("utf-8", "backslashreplace"))
