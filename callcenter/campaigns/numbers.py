"""Phone numbers of contacts and of the do-not-call list: validated and normalised to E.164
with ``phonenumbers``, with the time zone the number belongs to.

``phonenumbers`` is exact but slow (parse, validation and the time-zone lookup cost ~80 µs a
number), so :class:`Normaliser` keeps every answer by the raw text it was given: a list that
repeats a number, or a DNC list checked again, pays once per distinct string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import phonenumberutil as pnu
from phonenumbers import timezone as pn_timezone

_UNKNOWN_TZ = "Etc/Unknown"


class NumberError(ValueError):
    """A number that cannot be called: the message is a short reason."""


def check_region(region: str) -> str:
    region = region.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise NumberError(f"region {region!r} is not an ISO 3166 region phonenumbers knows")
    return region


@dataclass(frozen=True, slots=True)
class Number:
    e164: str
    #: The number's own time zone, or "" where the number does not say (several zones).
    timezone: str


@dataclass(slots=True)
class Normaliser:
    """Normalise numbers written for ``region`` (those without ``+`` and a country code)."""

    region: str
    _cache: dict[str, Number | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.region = check_region(self.region)

    def number(self, raw: str) -> Number:
        """The number in E.164 with its time zone; :class:`NumberError` with the reason."""
        found = self._cache.get(raw)
        if found is None:
            found = self._cache[raw] = _normalise(raw, self.region)
        if isinstance(found, str):
            raise NumberError(found)
        return found

    def e164(self, raw: str) -> str:
        return self.number(raw).e164


def _normalise(raw: str, region: str) -> Number | str:
    text = raw.strip()
    if not text:
        return "the number is empty"
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return f"{text!r} is not a phone number ({_parse_reason(exc)})"
    number_type = _valid_type(parsed)
    if number_type is None:
        return f"{text!r} is not a valid number (for region {region} unless it starts with +)"
    if pnu.is_number_type_geographical(number_type, parsed.country_code or 0):
        found = pn_timezone.time_zones_for_geographical_number(parsed)
    else:
        found = pn_timezone._country_level_time_zones_for_number(parsed)
    zones = [z for z in found if z != _UNKNOWN_TZ]
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return Number(e164=e164, timezone=zones[0] if len(zones) == 1 else "")


def _valid_type(parsed: phonenumbers.PhoneNumber) -> int | None:
    """The number's type if it is valid, else None.

    ``is_valid_number`` finds the region (for a calling code shared by several regions, such
    as +1, by working out the number's type in each) and then works out the type again, and
    ``timezone.time_zones_for_number`` does both once more: a dozen regular expressions each
    time. This takes the same steps (``region_code_for_number``,
    ``_region_code_for_number_from_list``, ``is_valid_number_for_region``) once, keeping the
    type it found; a test holds it to ``is_valid_number``.
    """
    country_code = parsed.country_code
    if country_code is None:
        return None
    regions = pnu.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if regions is None:
        return None
    nsn = pnu.national_significant_number(parsed)
    unknown = pnu.PhoneNumberType.UNKNOWN
    region: str | None = None
    number_type: int | None = None
    if len(regions) == 1:
        region = regions[0]
    else:
        for candidate in regions:
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(candidate.upper(), None)
            if metadata is None:
                continue
            if metadata.leading_digits is not None:
                if re.match(metadata.leading_digits, nsn):
                    region = candidate
                    break
            else:
                found: int = pnu._number_type_helper(nsn, metadata)
                if found != unknown:
                    region, number_type = candidate, found
                    break
    if region is None:
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None or (
        region != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
        and country_code != pnu.country_code_for_valid_region(region)
    ):
        return None
    if number_type is None:
        number_type = pnu._number_type_helper(nsn, metadata)
    return None if number_type == unknown else number_type


def _parse_reason(exc: phonenumbers.NumberParseException) -> str:
    reasons = {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a number",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }
    return reasons.get(exc.error_type, "not a number")


def normalise_chunk(args: tuple[list[str], str]) -> list[tuple[str, str] | str]:
    """A pool worker's share: (E.164, time zone) or the reason, for each raw number. It lives
    here so a spawned worker imports only this module and ``phonenumbers``."""
    raws, region = args
    out: list[tuple[str, str] | str] = []
    for raw in raws:
        found = _normalise(raw, region)
        out.append(found if isinstance(found, str) else (found.e164, found.timezone))
    return out
