"""Which provider an X12 file is for: the payee (835) or billing provider (837) it names.

Read straight off the text with the separators the ISA segment declares, without the
implementation-guide walk, so the sensor can route a file to its hospital cheaply.
"""

ISA_LENGTH = 106  # the ISA segment has a fixed width; its last character ends the segment

# (segment id, first element, the element holding the id qualifier) → where the id follows it
_NAME_SEGMENTS = {("N1", "PE"): 3, ("NM1", "85"): 8}
_QUALIFIERS = {"XX": "npi", "FI": "tin", "EI": "tin"}
_TAX_ID_REFERENCES = {"TJ", "EI"}  # 835 payee REF*TJ, 837 billing provider REF*EI


def separators(text: str) -> tuple[str, str] | None:
    """(element separator, segment terminator) from the ISA, or None if there is no ISA."""
    start = text.lstrip("\ufeff \t\r\n")
    if not start.startswith("ISA") or len(start) < ISA_LENGTH:
        return None
    return start[3], start[ISA_LENGTH - 1]


def sender_identifiers(text: str) -> list[tuple[str, str]]:
    """The (npi | tin, identifier) pairs of the payee / billing provider, in file order."""
    found = separators(text)
    if found is None:
        return []
    element, terminator = found
    identifiers: list[tuple[str, str]] = []
    for segment in text.split(terminator):
        fields = segment.strip().split(element)
        if len(fields) < 3:
            continue
        at = _NAME_SEGMENTS.get((fields[0], fields[1]))
        if at is not None and len(fields) > at + 1 and fields[at] in _QUALIFIERS:
            identifiers.append((_QUALIFIERS[fields[at]], fields[at + 1]))
        elif fields[0] == "REF" and fields[1] in _TAX_ID_REFERENCES:
            identifiers.append(("tin", fields[2]))
    return list(dict.fromkeys(identifiers))
