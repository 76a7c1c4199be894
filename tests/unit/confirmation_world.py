"""A simulated county for the annual-confirmation tests: 灌云县 (320723) with two townships,
its people imported through the real initial-data import, a payment roll in a CSV, and a
camera image file (a JPEG as a phone writes it) for the self-service page.

Birth years are chosen so the age bands and quotas are known (ages on 2026-10-16):
township A has 80+ ×1, 70–79 ×2, under 70 ×4 (quota 3); township B has 80+ ×1, 70–79 ×1,
under 70 ×5 (quota 3)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy.orm import Session, sessionmaker
from stdnum.cn import ric

from controller.records.initial_import import import_file
from muster.clock import CAMPAIGN_TZ, Clock

__all__ = [
    "COUNTY",
    "PEOPLE",
    "TOWNSHIP_A",
    "TOWNSHIP_B",
    "Person",
    "at_cst",
    "camera_jpeg",
    "id_number",
    "load_people",
    "write_roll",
]

COUNTY = "320723"
TOWNSHIP_A = "320723100000"
TOWNSHIP_B = "320723101000"


def id_number(birth: date, seq: int, region: str = COUNTY) -> str:
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    return body + ric.calc_check_digit(body + "0")  # it reads the first 17 of 18


@dataclass(frozen=True)
class Person:
    key: str
    name: str
    township: str
    birth: date
    seq: int
    monthly: str = "1500.00"

    @property
    def id_number(self) -> str:
        return id_number(self.birth, self.seq)


PEOPLE: dict[str, Person] = {
    p.key: p
    for p in (
        Person("a1940", "张德三", TOWNSHIP_A, date(1940, 3, 2), 11, "2280.50"),
        Person("a1950", "李秀英", TOWNSHIP_A, date(1950, 5, 6), 22),
        Person("a1952", "王建国", TOWNSHIP_A, date(1952, 7, 8), 31),
        Person("a1958", "赵志强", TOWNSHIP_A, date(1958, 1, 20), 41, "1800.00"),
        Person("a1960", "孙海燕", TOWNSHIP_A, date(1960, 9, 9), 52),
        Person("a1963", "周国华", TOWNSHIP_A, date(1963, 4, 4), 61),
        Person("a1965", "吴桂兰", TOWNSHIP_A, date(1965, 2, 2), 72),
        Person("b1944", "郑广田", TOWNSHIP_B, date(1944, 6, 1), 81, "2000.00"),
        Person("b1954", "冯玉梅", TOWNSHIP_B, date(1954, 8, 8), 92),
        Person("b1962", "陈立新", TOWNSHIP_B, date(1962, 3, 3), 101),
        Person("b1966", "褚卫东", TOWNSHIP_B, date(1966, 6, 6), 111),
        Person("b1968", "卫红霞", TOWNSHIP_B, date(1968, 8, 18), 122),
        Person("b1970", "蒋志明", TOWNSHIP_B, date(1970, 10, 10), 131),
        Person("b1975", "沈丽娟", TOWNSHIP_B, date(1975, 5, 5), 142),
    )
}


def at_cst(year: int, month: int, day: int, hour: int = 10) -> datetime:
    """A moment on the campaign's calendar (Beijing time), as an aware UTC datetime."""
    return datetime(year, month, day, hour, tzinfo=CAMPAIGN_TZ).astimezone(UTC)


def load_people(sessions: sessionmaker[Session], directory: Path, clock: Clock) -> None:
    """The county's people through the initial-data import, as the centre has them."""
    path = directory / "people.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["乡镇代码", "姓名", "公民身份号码", "性别", "出生日期", "优抚对象类别"])
        for p in PEOPLE.values():
            sex = "男" if p.seq % 2 else "女"
            writer.writerow(
                [p.township, p.name, p.id_number, sex, p.birth.isoformat(), "disabled_soldier"]
            )
    report = import_file(sessions, path, clock=clock)
    assert not report.rejected, report.rejected


def write_roll(path: Path, extra_rows: list[list[str]] | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["公民身份号码", "优抚对象类别", "月发放金额（元）", "联系电话"])
        for p in PEOPLE.values():
            writer.writerow([p.id_number, "残疾军人", p.monthly, "13812345678"])
        for row in extra_rows or []:
            writer.writerow(row)
    return path


def camera_jpeg(path: Path | None = None, size: tuple[int, int] = (640, 480)) -> bytes:
    """A camera-sized JPEG (a face-like drawing on a textured background), as a phone's front
    camera writes one; written to ``path`` when given."""
    height, width = size
    rng = np.random.default_rng(7)
    image = rng.integers(60, 200, (height, width, 3), dtype=np.uint8)
    centre = (width // 2, height // 2)
    cv2.ellipse(image, centre, (width // 6, height // 4), 0, 0, 360, (150, 180, 220), -1)
    for dx in (-width // 16, width // 16):
        cv2.circle(image, (centre[0] + dx, centre[1] - height // 16), width // 60, (40, 40, 40), -1)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    data = encoded.tobytes()
    if path is not None:
        path.write_bytes(data)
    return data
