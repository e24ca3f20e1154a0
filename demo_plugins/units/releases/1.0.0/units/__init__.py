"""Units 1.0: ``%units 3 km to mi`` and ``convert(value, from_unit, to_unit)``.

Every unit is a dimension and a factor to the dimension's SI unit. Two units
convert only within one dimension; the answer is a :class:`Quantity`, a
``float`` that remembers its unit for display.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from plugmarket.context import PluginContext

try:
    from IPython.core.error import UsageError
except ImportError:  # outside IPython
    UsageError = ValueError  # type: ignore[assignment,misc]


class Unit(NamedTuple):
    dimension: str
    factor: float  # one of this unit, in the dimension's SI unit


_INCH = 0.0254
_POUND = 0.45359237
_GALLON = 3.785411784e-3
_DAY = 86_400.0

UNITS: dict[str, Unit] = {
    # length (m)
    "m": Unit("length", 1.0),
    "km": Unit("length", 1e3),
    "cm": Unit("length", 1e-2),
    "mm": Unit("length", 1e-3),
    "um": Unit("length", 1e-6),
    "µm": Unit("length", 1e-6),
    "nm": Unit("length", 1e-9),
    "in": Unit("length", _INCH),
    "ft": Unit("length", 12 * _INCH),
    "yd": Unit("length", 36 * _INCH),
    "mi": Unit("length", 63_360 * _INCH),
    "nmi": Unit("length", 1852.0),
    "au": Unit("length", 149_597_870_700.0),
    "ly": Unit("length", 9_460_730_472_580_800.0),
    # mass (kg)
    "kg": Unit("mass", 1.0),
    "g": Unit("mass", 1e-3),
    "mg": Unit("mass", 1e-6),
    "t": Unit("mass", 1e3),
    "lb": Unit("mass", _POUND),
    "oz": Unit("mass", _POUND / 16),
    "st": Unit("mass", _POUND * 14),
    # time (s)
    "s": Unit("time", 1.0),
    "ms": Unit("time", 1e-3),
    "us": Unit("time", 1e-6),
    "µs": Unit("time", 1e-6),
    "ns": Unit("time", 1e-9),
    "min": Unit("time", 60.0),
    "h": Unit("time", 3600.0),
    "day": Unit("time", _DAY),
    "week": Unit("time", 7 * _DAY),
    "yr": Unit("time", 365.25 * _DAY),
    # volume (m3)
    "m3": Unit("volume", 1.0),
    "l": Unit("volume", 1e-3),
    "L": Unit("volume", 1e-3),
    "ml": Unit("volume", 1e-6),
    "mL": Unit("volume", 1e-6),
    "gal": Unit("volume", _GALLON),
    "qt": Unit("volume", _GALLON / 4),
    "pt": Unit("volume", _GALLON / 8),
    "cup": Unit("volume", _GALLON / 16),
    "floz": Unit("volume", _GALLON / 128),
    # area (m2)
    "m2": Unit("area", 1.0),
    "km2": Unit("area", 1e6),
    "cm2": Unit("area", 1e-4),
    "ha": Unit("area", 1e4),
    "acre": Unit("area", 4046.8564224),
    "ft2": Unit("area", (12 * _INCH) ** 2),
    # speed (m/s)
    "m/s": Unit("speed", 1.0),
    "km/h": Unit("speed", 1e3 / 3600),
    "mph": Unit("speed", 63_360 * _INCH / 3600),
    "kn": Unit("speed", 1852.0 / 3600),
    "ft/s": Unit("speed", 12 * _INCH),
    # energy (J)
    "J": Unit("energy", 1.0),
    "kJ": Unit("energy", 1e3),
    "cal": Unit("energy", 4.184),
    "kcal": Unit("energy", 4184.0),
    "Wh": Unit("energy", 3600.0),
    "kWh": Unit("energy", 3.6e6),
    "eV": Unit("energy", 1.602176634e-19),
    # pressure (Pa)
    "Pa": Unit("pressure", 1.0),
    "kPa": Unit("pressure", 1e3),
    "bar": Unit("pressure", 1e5),
    "atm": Unit("pressure", 101_325.0),
    "psi": Unit("pressure", _POUND * 9.80665 / _INCH**2),
    "mmHg": Unit("pressure", 133.322387415),
}

_QUERY = re.compile(
    r"^\s*(?P<value>[-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<source>\S+)"
    r"\s+(?:to|in|as|->)\s+(?P<target>\S+)\s*$"
)
USAGE = "usage: %units VALUE UNIT to UNIT  (for example: %units 3 km to mi); %units list"


class Quantity(float):
    """A number with its unit: ``Quantity(1.86, "mi")`` shows as ``1.86 mi``.

    Arithmetic gives plain floats: the unit is for reading, not for algebra.
    """

    unit: str

    def __new__(cls, value: float, unit: str) -> Quantity:
        self = super().__new__(cls, value)
        self.unit = unit
        return self

    def __repr__(self) -> str:
        return f"{float(self):.6g} {self.unit}"

    __str__ = __repr__


def _unit(name: str) -> Unit:
    unit = UNITS.get(name)
    if unit is None:
        close = difflib.get_close_matches(name, UNITS, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else "; `%units list` shows them"
        raise UsageError(f"unknown unit {name!r}{hint}")
    return unit


def convert(value: float, source: str, target: str) -> float:
    """``value`` in unit ``source``, expressed in unit ``target``.

    Raises:
        UsageError: a unit is unknown, or the two measure different things.
    """
    a, b = _unit(source), _unit(target)
    if a.dimension != b.dimension:
        raise UsageError(f"cannot convert {source} ({a.dimension}) to {target} ({b.dimension})")
    return value * a.factor / b.factor


def listing() -> str:
    """Every known unit, one line per dimension."""
    by_dimension: dict[str, list[str]] = {}
    for name, unit in UNITS.items():
        by_dimension.setdefault(unit.dimension, []).append(name)
    return "\n".join(f"{dim:>12}: {' '.join(names)}" for dim, names in by_dimension.items())


def units(line: str) -> Quantity | None:
    """The ``%units`` magic: ``VALUE UNIT to UNIT``, or ``list``.

    Raises:
        UsageError: the line does not parse, or the conversion is impossible.
    """
    if line.strip() in ("", "list"):
        print(listing())
        return None
    match = _QUERY.match(line)
    if match is None:
        raise UsageError(USAGE)
    value = float(match["value"].replace("_", ""))
    return Quantity(convert(value, match["source"], match["target"]), match["target"])


def activate(ctx: PluginContext) -> None:
    """Register ``%units`` and push ``convert`` into the user namespace."""
    ctx.register_magic(units, "units")
    ctx.push(convert=convert)
