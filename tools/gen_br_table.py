#!/usr/bin/env python3
"""Generate tests/fixtures/br_holidays_2024_2030.json from the Python `holidays` package.

Usage (from the crate root):
    python3 -m venv /work/scratch/venv && /work/scratch/venv/bin/pip install holidays
    /work/scratch/venv/bin/python tools/gen_br_table.py

For BR and every BR subdivision (27 federative units) and every year 2024..=2030
it records each holiday date with its category. The package has two categories
for Brazil: "public" (PUBLIC) and "optional" (OPTIONAL, pontos facultativos);
both are exported. Subdivision calendars contain the national holidays too,
like our `extends = "BR"` files. Calendar codes follow our file names:
"BR" and "BR-<UF>".
"""
import json
import pathlib

import holidays
from holidays.constants import OPTIONAL, PUBLIC

YEARS = range(2024, 2031)
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "br_holidays_2024_2030.json"


def dump(subdiv):
    per_year = {}
    for year in YEARS:
        entries = []
        for category in (PUBLIC, OPTIONAL):
            hs = holidays.country_holidays(
                "BR", subdiv=subdiv, years=year, categories=(category,), language="pt_BR"
            )
            for day, name in sorted(hs.items()):
                entries.append([day.isoformat(), category, name])
        entries.sort()
        per_year[str(year)] = entries
    return per_year


def main():
    calendars = {"BR": dump(None)}
    for sub in holidays.country_holidays("BR").subdivisions:
        if len(sub) != 2:  # skip cities such as "São Paulo Capital"
            continue
        calendars[f"BR-{sub}"] = dump(sub)
    doc = {
        "generator": "tools/gen_br_table.py",
        "holidays_package_version": holidays.__version__,
        "years": [YEARS.start, YEARS.stop - 1],
        "calendars": calendars,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One [date, category, name] entry per line keeps the file small and diffable.
    lines = ["{"]
    lines.append(f' "generator": {json.dumps(doc["generator"])},')
    lines.append(f' "holidays_package_version": {json.dumps(doc["holidays_package_version"])},')
    lines.append(f' "years": {json.dumps(doc["years"])},')
    lines.append(' "entry_format": ["date", "category", "name (package, pt_BR)"],')
    lines.append(' "calendars": {')
    codes = list(calendars)
    for ci, code in enumerate(codes):
        lines.append(f'  {json.dumps(code)}: {{')
        years = list(calendars[code])
        for yi, year in enumerate(years):
            lines.append(f'   {json.dumps(year)}: [')
            entries = calendars[code][year]
            for ei, e in enumerate(entries):
                comma = "," if ei + 1 < len(entries) else ""
                lines.append("    " + json.dumps(e, ensure_ascii=False) + comma)
            lines.append("   ]" + ("," if yi + 1 < len(years) else ""))
        lines.append("  }" + ("," if ci + 1 < len(codes) else ""))
    lines.append(" }")
    lines.append("}")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(calendars)} calendars)")


if __name__ == "__main__":
    main()
