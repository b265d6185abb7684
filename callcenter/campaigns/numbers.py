"""Phone numbers of contacts and of the do-not-call list: validated and normalised to E.164
with ``phonenumbers``, with the time zone the number belongs to.

``phonenumbers`` is exact but slow: ~30 µs of CPU a number on the benchmark machine, of which
``parse`` takes ~18 µs and the validation ~7 µs, both regular expressions over the whole
number, so nothing short of the full number can be cached for them. :class:`Normaliser`
keeps every answer by the raw text it was given: a list that repeats a number, or a DNC list
checked again, pays once per distinct string. The time zone, though, depends only on the first
few digits of the number (:func:`_zone_key`), so it is looked up once per such prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import phonenumberutil as pnu
from phonenumbers import timezone as pn_timezone
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

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
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return Number(e164=e164, timezone=_timezone(parsed, number_type, e164))


#: The time zone (or "") by :func:`_zone_key`; and how many digits of E.164 decide it, by
#: country calling code.
_ZONE_BY_KEY: dict[str, str] = {}
_ZONE_DIGITS: dict[int, int] = {}


def _zone_key(country_code: int, geographical: bool, e164: str) -> str:
    """What the time zone of a valid number depends on, and nothing more.

    For a geographical number, ``time_zones_for_geographical_number`` returns the zones of the
    longest key of ``TIMEZONE_DATA`` that starts the number's E.164 digits, trying at most
    ``TIMEZONE_LONGEST_PREFIX`` digits. Calling codes are prefix-free, so a key that starts
    the digits either is no longer than the calling code or starts with it: the answer
    depends only on the first max(len(code), longest key starting with the code) digits. For
    +1 that is 7 (code, area code and exchange). Any other number gets its country's zones.
    """
    if not geographical:
        return f"c{country_code}"
    digits = _ZONE_DIGITS.get(country_code)
    if digits is None:
        code = str(country_code)
        longest = max((len(k) for k in TIMEZONE_DATA if k.startswith(code)), default=0)
        digits = _ZONE_DIGITS[country_code] = min(TIMEZONE_LONGEST_PREFIX, max(len(code), longest))
    return "g" + e164[1 : 1 + digits]


def _timezone(parsed: phonenumbers.PhoneNumber, number_type: int, e164: str) -> str:
    """The number's only time zone, or "" (several, or none known), as ``phonenumbers``
    says, asked once per :func:`_zone_key`."""
    country_code = parsed.country_code or 0
    geographical = pnu.is_number_type_geographical(number_type, country_code)
    key = _zone_key(country_code, geographical, e164)
    found = _ZONE_BY_KEY.get(key)
    if found is None:
        if geographical:
            zones = pn_timezone.time_zones_for_geographical_number(parsed)
        else:
            zones = pn_timezone._country_level_time_zones_for_number(parsed)
        known = [z for z in zones if z != _UNKNOWN_TZ]
        found = _ZONE_BY_KEY[key] = known[0] if len(known) == 1 else ""
    return found


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
