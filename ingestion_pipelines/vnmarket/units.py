"""Units of the Vietnamese sources, normalised to what the tables store: every price in VND.

What each provider speaks (FIELDS.md has the field-by-field table):

- VNDIRECT finfo (`/v4/stock_prices`, `/v4/vnmarket_prices` for stocks' prices): thousands of
  VND, a decimal (`68.7` is 68,700 VND). Index points are points, not money: never scaled.
- Vietcap (VCI) chart API (`/chart/OHLCChart/gap-chart`): full VND for stocks (`73600`), points
  for indices.
- SJC's XML feed (`/xml/tygiavang.xml`): thousands of VND per tael (lượng) as text with "." as the
  thousands separator (`"36.420"` is 36,420,000 VND) — the `unit` attribute says "ngàn đồng/lượng".
- SJC's JSON service (`PriceService.ashx`): `BuyValue`/`SellValue` are numbers in full VND per
  tael (`118500000.0`); `Buy`/`Sell` repeat them as text with "," separators (`"118,500"`), whose
  scale no field states, so the numbers are what is stored and the text is checked against them.
- Vietcombank's exchange-rate XML (`Exrate`): VND per unit of currency; recent feeds write
  thousands with "," and a "." decimal point (`"25,850.00"`), older ones plain (`"22625"`); an
  empty or "-" value means the bank does not quote that column.

- PNJ (`edge-api.pnj.io/ecom-frontend/v1/get-gold-price`): `giaban`/`giamua` in thousands of VND
  per chỉ (`15130` is 15,130,000 VND per chỉ, 151,300,000 per tael).

Times: SJC's XML `updated` is "hh:mm:ss AM DD/MM/YYYY", its JSON `latestDate` "HH:MM DD/MM/YYYY",
Vietcombank's `DateTime` month first "M/D/YYYY h:mm:ss AM" — all ICT wall time.

Every function returns an exact `Decimal` or raises `UnitError` naming the text it refused: a
value that cannot be read is never guessed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from ingestion_pipelines.core.errors import IngestError
from ingestion_pipelines.core.timezones import ICT

THOUSAND = Decimal(1000)
CHI_PER_TAEL = Decimal(10)  # 1 lượng (tael, 37.5 g) = 10 chỉ
# Provider -> how many VND one unit of its stock-price fields is.
PRICE_SCALE: dict[str, Decimal] = {"vndirect": THOUSAND, "vietcap": Decimal(1)}

_GROUPED_DOT = re.compile(r"^\d{1,3}(\.\d{3})+$")  # "36.420", "1.234.567"
_GROUPED_COMMA = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")  # "118,500", "25,850.00"
_PLAIN = re.compile(r"^\d+(\.\d+)?$")  # "22625", "157.55"


class UnitError(IngestError, ValueError):
    """A value whose unit or format could not be read."""


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise UnitError(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise UnitError(f"not a finite number: {text!r}")
    return value


def _clean(text: object) -> str:
    if isinstance(text, float):
        raise UnitError(f"a float where exact text is required: {text!r}")
    return str(text).strip()


def thousands_to_vnd(value: object) -> Decimal:
    """A price in thousands of VND (VNDIRECT: `68.7`, `"68.7"` or a Decimal) as VND (68700)."""
    text = _clean(value)
    if not _PLAIN.match(text.lstrip("-")):
        raise UnitError(f"not a price in thousands of VND: {text!r}")
    return _decimal(text) * THOUSAND


def provider_price_to_vnd(value: object, provider: str) -> Decimal:
    """A stock price as `provider` sends it, in VND (`PRICE_SCALE`)."""
    try:
        scale = PRICE_SCALE[provider]
    except KeyError:
        raise UnitError(f"no known price unit for provider {provider!r}") from None
    text = _clean(value)
    if not _PLAIN.match(text.lstrip("-")):
        raise UnitError(f"not a price: {text!r} from {provider}")
    return _decimal(text) * scale


def sjc_xml_price(text: object) -> Decimal:
    """An SJC XML price (thousands of VND per tael, "." grouping) in VND per tael.

    `"36.420"` -> 36420000. A value under 1,000 thousand ("980") has no separator and is read as
    it stands. A "," (SJC's JSON style) is refused: mixing the two would misread by 1000x."""
    raw = _clean(text)
    if "," in raw:
        raise UnitError(f"SJC XML price with a ',' (JSON style?): {raw!r}")
    if _GROUPED_DOT.match(raw):
        return _decimal(raw.replace(".", "")) * THOUSAND
    if raw.isdigit():
        return _decimal(raw) * THOUSAND
    raise UnitError(f"not an SJC XML price: {raw!r}")


def sjc_json_text(text: object) -> Decimal:
    """SJC JSON `Buy`/`Sell` text as the number it writes, "," grouping removed (`"118,500"` ->
    118500). Its scale (thousands or full VND) is not stated by the field: `check_sjc_json` settles
    it against the numeric `BuyValue`/`SellValue`."""
    raw = _clean(text)
    if _GROUPED_COMMA.match(raw) and "." not in raw:
        return _decimal(raw.replace(",", ""))
    if raw.isdigit():
        return _decimal(raw)
    raise UnitError(f"not an SJC JSON price text: {raw!r}")


def sjc_json_value(value: object) -> Decimal:
    """SJC JSON `BuyValue`/`SellValue` (full VND per tael, e.g. `118500000.0`) exact, as VND."""
    if isinstance(value, bool):
        raise UnitError(f"not an SJC price value: {value!r}")
    raw = _clean(value)
    if not _PLAIN.match(raw):
        raise UnitError(f"not an SJC price value: {raw!r}")
    number = _decimal(raw)
    if number != number.to_integral_value():
        raise UnitError(f"an SJC price with a fraction of a dong: {raw!r}")
    return number.quantize(Decimal(1))


def check_sjc_json(text: object, value: object) -> Decimal:
    """The VND price of an SJC JSON pair (`Buy` with `BuyValue`): the numeric value, after checking
    that the text says the same, written either in VND or in thousands of VND; `UnitError` when
    it says neither (one of the two changed its unit)."""
    from_value = sjc_json_value(value)
    written = sjc_json_text(text)
    if from_value not in (written, written * THOUSAND):
        raise UnitError(f"SJC text {text!r} disagrees with value {value!r} ({from_value} VND)")
    return from_value


def bank_rate(text: object) -> Decimal | None:
    """A Vietcombank `Buy`/`Transfer`/`Sell` attribute in VND per unit; None when the bank does
    not quote it ("", "-" or "0", which the feed writes for a currency it does not buy in cash).

    Accepts "25,850.00" and "22625" and "157.55"; refuses a "." used as a thousands separator."""
    raw = _clean(text)
    if raw in ("", "-"):
        return None
    if _GROUPED_COMMA.match(raw):
        value = _decimal(raw.replace(",", ""))
    elif _PLAIN.match(raw):
        value = _decimal(raw)
    else:
        raise UnitError(f"not a bank rate: {raw!r}")
    return None if value == 0 else value


def pnj_price(value: object) -> Decimal:
    """A PNJ price (thousands of VND per chỉ, a JSON integer) in VND per tael: `15130` ->
    151300000."""
    if isinstance(value, bool):
        raise UnitError(f"not a PNJ price: {value!r}")
    raw = _clean(value)
    if not _PLAIN.match(raw):
        raise UnitError(f"not a PNJ price: {raw!r}")
    return _decimal(raw) * THOUSAND * CHI_PER_TAEL


def _ict(text: object, pattern: str, what: str) -> datetime:
    try:
        local = datetime.strptime(_clean(text), pattern)
    except ValueError:
        raise UnitError(f"not {what}: {text!r}") from None
    return local.replace(tzinfo=ICT).astimezone(UTC)


def sjc_xml_updated(text: object) -> datetime:
    """SJC XML `ratelist/@updated` ("08:58:32 AM 22/05/2013", ICT) as a UTC time."""
    return _ict(text, "%I:%M:%S %p %d/%m/%Y", "an SJC XML time")


def sjc_json_latest(text: object) -> datetime:
    """SJC JSON `latestDate` ("13:43 04/07/2026", ICT) as a UTC time."""
    return _ict(text, "%H:%M %d/%m/%Y", "an SJC JSON time")


def vcb_datetime(text: object) -> datetime:
    """Vietcombank `DateTime` ("9/2/2026 5:38:54 PM": month first, ICT) as a UTC time."""
    return _ict(text, "%m/%d/%Y %I:%M:%S %p", "a Vietcombank time")
