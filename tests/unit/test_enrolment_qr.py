"""Enrolment codes as people type them, the enrolment QR payload (MUSTER1/...) and its hostile
forms, QR images read through zxing-cpp, and the bulk townships CSV with its PDF and CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno
from hypothesis import given
from hypothesis import strategies as st

from controller.devices.code_sheets import (
    MAX_ROWS,
    IssuedCode,
    codes_csv,
    codes_pdf,
    parse_bulk_csv,
)
from controller.devices.pki_store import ensure_controller_pki
from muster.crypto.pki import certificate_pem
from muster.enrolment_codes import (
    MAX_TICKET_BYTES,
    EnrolmentTicket,
    ca_fingerprint,
    certificate_matching,
    hash_code,
    new_code,
    parse_code,
    parse_ticket,
)
from muster.errors import ConfigError
from provisioning.qr import read_qr_image, ticket_in_image

FPR = "AB" * 32
CODE = "K7QF-2M9D-XH4T-8PWC"
GOOD = f"MUSTER1/{CODE}/CTRL.EXAMPLE.CN/7443/{FPR}"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


# ---- codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [CODE, CODE.lower(), CODE.replace("-", ""), "k7qf 2m9d xh4t 8pwc", " K7QF-2M9D-XH4T-8PWC\t"],
)
def test_a_code_is_accepted_in_any_case_with_or_without_dashes(typed: str) -> None:
    assert parse_code(typed) == CODE
    assert hash_code(typed) == hash_code(CODE)  # the centre hashes by the same rule


def test_confusable_letters_are_read_as_the_digits_they_look_like() -> None:
    assert parse_code("O0I1-L234-5678-9ABC") == "0011-1234-5678-9ABC"


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("K7QF-2M9D-XH4T", "16 位"),
        ("K7QF-2M9D-XH4T-8PWC-AAAA", "16 位"),
        ("K7QF-2M9D-XH4T-8PW!", "无效字符"),
        ("注册码注册码注册码注册码注册码注册", "无效字符"),
        ("", "16 位"),
        ("K7QF\x00M9D-XH4T-8PWC", "无效字符"),
    ],
)
def test_a_malformed_code_is_refused_saying_what_is_wrong(typed: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        parse_code(typed)


def test_new_codes_parse_as_themselves() -> None:
    for _ in range(50):
        code = new_code()
        assert parse_code(code) == code


# ---- the QR payload ------------------------------------------------------------------------


def test_a_ticket_round_trips_and_stays_in_the_qr_alphanumeric_set() -> None:
    ticket = EnrolmentTicket.make(CODE.lower(), "ctrl.example.cn", 7443, FPR.lower())
    assert ticket == EnrolmentTicket(CODE, "ctrl.example.cn", 7443, FPR)
    assert ticket.controller == "ctrl.example.cn:7443"
    assert parse_ticket(ticket.payload()) == ticket
    assert segno.make(ticket.payload(), error="m").mode == "alphanumeric"


def test_ipv4_and_ipv6_controllers() -> None:
    assert parse_ticket(f"MUSTER1/{CODE}/10.0.0.5/7443/{FPR}").controller == "10.0.0.5:7443"
    ticket = parse_ticket(f"MUSTER1/{CODE}/[FD00::0001]/7443/{FPR}")
    assert ticket.controller == "[fd00::1]:7443"
    assert parse_ticket(ticket.payload()) == ticket


@pytest.mark.parametrize(
    ("payload", "said"),
    [
        (f"MUSTER2/{CODE}/CTRL/7443/{FPR}", "第 2 版"),
        (f"MUSTER0/{CODE}/CTRL/7443/{FPR}", "第 0 版"),
        (f"MUSTER-ENROL:{CODE}", "旧格式"),
        (CODE, "MUSTER1/"),
        ("https://example.cn/enrol", "MUSTER1/"),
        (f"MUSTER1/{CODE}/CTRL/7443/{FPR[:-1]}", "指纹"),
        (f"MUSTER1/{CODE}/CTRL/7443/{'G' * 64}", "指纹"),
        (f"MUSTER1/{CODE}/CTRL/7443/", "指纹"),
        (f"MUSTER1/{CODE}/CTRL/7443", "4 项"),
        (f"MUSTER1/{CODE}/CTRL/7443/{FPR}/EXTRA", "4 项"),
        (f"MUSTER1/{CODE}/CTRL/0/{FPR}", "端口"),
        (f"MUSTER1/{CODE}/CTRL/65536/{FPR}", "端口"),
        (f"MUSTER1/{CODE}/CTRL/-1/{FPR}", "端口"),
        (f"MUSTER1/{CODE}/CTRL/７４４３/{FPR}", "ASCII"),
        (f"MUSTER1/{CODE}/CTRL EVIL/7443/{FPR}", "主机名"),
        (f"MUSTER1/{CODE}/-CTRL/7443/{FPR}", "主机名"),
        (f"MUSTER1/{CODE}/[NOT-V6]/7443/{FPR}", "主机名"),
        (f"MUSTER1/{CODE}/{'A' * 300}/7443/{FPR}", "主机名"),
        (f"MUSTER1/{CODE}//7443/{FPR}", "主机名"),
        (f"MUSTER1/K7QF/CTRL/7443/{FPR}", "16 位"),
        (f"MUSTER1/{CODE}/CTRL/7443/{FPR}\x00", "不可打印"),
        ("MUSTER1/" + "/" * 600, "过长"),
        ("", "MUSTER1/"),
    ],
)
def test_hostile_payloads_are_refused_saying_what_is_wrong(payload: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        parse_ticket(payload)


def test_payloads_that_are_not_text_are_refused() -> None:
    with pytest.raises(ConfigError, match="不是文本"):
        parse_ticket(b"\xff\xfe" + GOOD.encode())
    with pytest.raises(ConfigError, match="过长"):
        parse_ticket(b"M" * (MAX_TICKET_BYTES + 1))
    assert parse_ticket(GOOD.encode()).code == CODE


@given(st.one_of(st.binary(max_size=700), st.text(max_size=700)))
def test_any_payload_is_a_ticket_or_a_config_error(payload: bytes | str) -> None:
    try:
        ticket = parse_ticket(payload)
    except ConfigError:
        return
    assert parse_ticket(ticket.payload()) == ticket


def test_the_ca_fingerprint_matches_a_bundle_holding_the_ca(tmp_path: Path) -> None:
    pki = ensure_controller_pki(tmp_path / "c", ["127.0.0.1"], now=NOW)
    other = ensure_controller_pki(tmp_path / "o", ["127.0.0.1"], now=NOW)
    fingerprint = ca_fingerprint(certificate_pem(pki.ca_cert))
    assert len(fingerprint) == 64
    bundle = certificate_pem(other.ca_cert) + certificate_pem(pki.ca_cert)
    assert certificate_matching(bundle, fingerprint)
    assert certificate_matching(bundle, fingerprint.lower())
    assert not certificate_matching(certificate_pem(other.ca_cert), fingerprint)
    assert not certificate_matching(b"not a certificate", fingerprint)


# ---- QR images -----------------------------------------------------------------------------


def _png(tmp_path: Path, payload: str | bytes, name: str = "qr.png") -> Path:
    path = tmp_path / name
    segno.make(payload, error="m").save(str(path), scale=8)
    return path


def test_a_qr_image_gives_the_ticket(tmp_path: Path) -> None:
    assert read_qr_image(_png(tmp_path, GOOD)) == parse_ticket(GOOD)


def test_a_photo_like_image_gives_the_ticket(tmp_path: Path) -> None:
    """A QR code placed small and rotated in a larger grey picture, saved as JPEG."""
    symbol = cv2.imread(str(_png(tmp_path, GOOD)), cv2.IMREAD_GRAYSCALE)
    canvas = np.full((900, 1200), 170, np.uint8)
    canvas[200 : 200 + symbol.shape[0], 300 : 300 + symbol.shape[1]] = symbol
    turn = cv2.getRotationMatrix2D((600, 450), 12, 1.0)
    photo = cv2.warpAffine(canvas, turn, (1200, 900), borderValue=170)
    path = tmp_path / "photo.jpg"
    cv2.imwrite(str(path), photo, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert read_qr_image(path).code == CODE


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "不是可识别的图片"),
        (b"GIF89a not really", "不是可识别的图片"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "不是可识别的图片"),
    ],
)
def test_files_that_are_not_images_are_refused(tmp_path: Path, content: bytes, said: str) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=said):
        read_qr_image(path)


def test_missing_huge_and_blank_images_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="无法读取"):
        read_qr_image(tmp_path / "absent.png")
    huge = tmp_path / "huge.png"
    with huge.open("wb") as fh:
        fh.truncate(31 * 2**20)
    with pytest.raises(ConfigError, match="太大"):
        read_qr_image(huge)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 300), 255, np.uint8))
    with pytest.raises(ConfigError, match="没有找到二维码"):
        read_qr_image(blank)


@pytest.mark.parametrize(
    ("payload", "said"),
    [
        (f"MUSTER9/{CODE}/CTRL/7443/{FPR}", "第 9 版"),
        (f"MUSTER1/{CODE}/CTRL/7443/{'Z' * 64}", "指纹"),
        (b"\xff\xfe\xfd binary", "不是文本"),
        ("https://example.cn/another-qr", "MUSTER1/"),
        ("A" * 1200, "过长"),
    ],
)
def test_hostile_qr_codes_in_images_are_refused(
    tmp_path: Path, payload: str | bytes, said: str
) -> None:
    with pytest.raises(ConfigError, match=said):
        read_qr_image(_png(tmp_path, payload))


def test_a_muster_code_beside_another_qr_code_is_found(tmp_path: Path) -> None:
    other = cv2.imread(str(_png(tmp_path, "https://example.cn/", "o.png")), cv2.IMREAD_GRAYSCALE)
    ours = cv2.imread(str(_png(tmp_path, GOOD)), cv2.IMREAD_GRAYSCALE)
    height = max(other.shape[0], ours.shape[0])
    canvas = np.full((height, other.shape[1] + ours.shape[1] + 40), 255, np.uint8)
    canvas[: other.shape[0], : other.shape[1]] = other
    canvas[: ours.shape[0], other.shape[1] + 40 :] = ours
    ticket = ticket_in_image(canvas)
    assert ticket is not None and ticket.code == CODE


# ---- bulk codes ----------------------------------------------------------------------------


def test_a_townships_csv_with_header_utf8_or_gbk() -> None:
    text = "乡镇代码,型号\n370902001000,fixed-kiosk\n\n370902002,portable-tablet\n"
    for data in (text.encode("utf-8-sig"), text.encode("gbk")):
        rows = parse_bulk_csv(data)
        assert [(r.line, r.township, r.profile) for r in rows] == [
            (2, "370902001000", "fixed-kiosk"),
            (4, "370902002000", "portable-tablet"),
        ]


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"", "没有数据行"),
        (b"township,profile\n", "没有数据行"),
        (b"370902001000\n", "第 1 行：应为两列"),
        (b"370902001000,fixed-kiosk,extra\n", "第 1 行：应为两列"),
        (b"37090200100X,fixed-kiosk\n", "第 1 行：乡镇代码"),
        (b"370902001000,no-such-profile\n", "第 1 行：型号 'no-such-profile' 不存在"),
        (b"370902001000,../../etc/passwd\n", "第 1 行：型号"),
        (b"370902001000,/tmp/evil.yaml\n", "第 1 行：型号"),
        (b"=HYPERLINK(1),fixed-kiosk\n", "乡镇代码"),
        (b"370902001000,fixed-kiosk\x00\n", "空字符"),
        (b"\xff\xfe\xfa\xfb\x80\x81,x\n", "UTF-8 或 GBK"),
        (b"370902001000,fixed-kiosk\n" * (MAX_ROWS + 1), f"{MAX_ROWS} 行"),
        (b"x" * (2**20 + 1), "过大"),
    ],
)
def test_a_bad_townships_csv_is_refused_naming_the_lines(data: bytes, said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        parse_bulk_csv(data)


def test_every_bad_line_is_named_at_once() -> None:
    data = b"370902001000,fixed-kiosk\nbad,fixed-kiosk\n370902001000,nope\n"
    with pytest.raises(ConfigError) as refused:
        parse_bulk_csv(data)
    message = str(refused.value)
    assert "2 行错误" in message and "第 2 行" in message and "第 3 行" in message
    assert "未创建任何注册码" in message


def test_the_codes_sheet_and_csv(tmp_path: Path) -> None:
    rows = parse_bulk_csv(b"370902001000,fixed-kiosk\n" * 9 + b"370902002000,portable-tablet\n")
    issued = [
        IssuedCode(
            row, EnrolmentTicket.make(new_code(), "127.0.0.1", 7443, FPR), NOW + timedelta(7)
        )
        for row in rows
    ]
    table = list(csv.reader(io.StringIO(codes_csv(issued).decode("utf-8-sig"))))
    assert table[0][:4] == ["乡镇代码", "乡镇", "型号", "注册码"]
    assert [r[3] for r in table[1:]] == [i.ticket.code for i in issued]
    assert all(parse_ticket(r[5]) == i.ticket for r, i in zip(table[1:], issued, strict=True))
    pdf = codes_pdf(issued, ca_cert_name="ca.crt")
    assert pdf.startswith(b"%PDF")
    assert (
        pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") + pdf.count(b"/Type /Page>") >= 1
    )
    assert pdf.count(b"/Subtype /Image") == len(issued)  # one QR code per device


def test_bulk_create_from_the_cli_all_or_nothing(tmp_path: Path) -> None:
    """A bad row refuses the whole file (exit 2, no code in the database, no sheet written);
    the corrected file writes the sheet and the CSV, and the database holds one code per row."""
    import sqlite3

    from click.testing import CliRunner

    from controller.cli.provision import code

    data_dir = tmp_path / "controller"
    ensure_controller_pki(data_dir, ["127.0.0.1"], now=NOW)
    townships = tmp_path / "t.csv"
    townships.write_text("370902001000,fixed-kiosk\n370902001000,nope\n", encoding="utf-8")
    args = ["create", "--bulk", str(townships), "--data-dir", str(data_dir), "--json"]
    refused = CliRunner().invoke(code, args)
    assert refused.exit_code == 2 and "第 2 行" in refused.output
    assert not (tmp_path / "t-codes.pdf").exists()
    townships.write_text("370902001000,fixed-kiosk\n370902001000,simulator\n", encoding="utf-8")
    done = CliRunner().invoke(code, [*args, "--hostname", "centre.example.cn"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["codes"] == 2
    table = (tmp_path / "t-codes.csv").read_text("utf-8-sig")
    assert "/CENTRE.EXAMPLE.CN/7443/" in table
    with sqlite3.connect(data_dir / "controller.db") as db:
        assert db.execute("SELECT count(*) FROM enrollment_codes").fetchone() == (2,)
    for bad in ("evil host/x", "centre.example.cn/7443", "-x"):
        hostile = CliRunner().invoke(code, [*args, "--hostname", bad])
        assert hostile.exit_code == 2 and "主机名" in hostile.output, hostile.output
    with sqlite3.connect(data_dir / "controller.db") as db:
        assert db.execute("SELECT count(*) FROM enrollment_codes").fetchone() == (2,)
