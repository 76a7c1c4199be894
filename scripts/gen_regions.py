"""Regenerate controller/records/regions.csv (provinces, cities, counties with current names) from
python-stdnum's division-code table. Run after upgrading python-stdnum."""

from __future__ import annotations

from controller.records.region_tree import SHIPPED, generate_entries, write_entries


def main() -> None:
    entries = generate_entries()
    SHIPPED.write_text(write_entries(entries), encoding="utf-8")
    print(f"{SHIPPED}: {len(entries)} regions")


if __name__ == "__main__":
    main()
