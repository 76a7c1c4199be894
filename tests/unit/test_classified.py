"""S-03: unit designations never enter the system, however they are spelled; big-unit names and
ordinary words do, and the refusal quotes what was typed and says what to write instead."""

from __future__ import annotations

import sys

import pytest

from muster import classified
from muster.classified import (
    ADVICE,
    find_designation,
    find_designations,
    fold,
    scan_fields,
    scan_text_values,
)
from muster.classified_variants import ANCHORS, NFKC_ANCHORS, TRADITIONAL

D, C = "designation", "cover_number"

# Every row a spelling a clerk or a red team could type, and what the filter must say about it:
# the kind of finding, or None for text that must pass. Grouped by the trick it tries.
SPELLINGS: list[tuple[str, str | None]] = [
    # The plain forms S-03 names.
    ("3师5团2连", D),
    ("x师x团x连", D),
    ("三师五团", D),
    ("第十二师", D),
    ("第三十八集团军", D),
    ("38集团军", D),
    ("七十一集团军", D),
    ("陆军第12装甲师一营", D),
    ("空军第5航空旅", D),
    ("二营", D),
    ("十二中队", D),
    ("38军", D),
    ("第一军", D),
    ("三十八军", D),
    ("38军112师", D),
    ("3师5团2连3排1班", D),
    ("3连长", D),  # a numbered commander names the company
    ("二连长", D),
    # Traditional and Japanese forms.
    ("12師", D),
    ("三師五團二連", D),
    ("第38集團軍", D),
    ("二營", D),
    ("第5旅3營", D),
    ("七十一集団軍", D),
    ("第12裝甲師", D),
    ("171艦", D),
    ("第3艦隊", D),
    ("2支隊", D),
    # Financial numerals.
    ("叁拾捌军", D),
    ("壹拾贰师", D),
    ("贰团", D),
    ("貳團", D),
    ("第參營", D),  # 参 alone is "join" (参团, 参军); with 第 or in a run it counts
    ("陸拾陸師", D),
    ("伍拾肆团", D),
    ("〇三团", D),
    ("两营", D),
    # Full-width, circled, parenthesised, Roman, superscript digits.
    ("１２师", D),
    ("３师５团", D),
    ("①师②团", D),
    ("⑳团", D),
    ("⑴营", D),
    ("㈠团", D),
    ("Ⅻ师", D),
    ("ⅲ团", D),
    ("XII师", D),
    ("¹²师", D),
    ("₃团", D),
    ("❶营", D),
    ("⓫师", D),
    ("٣٨军", D),  # Arabic-Indic digits
    # Invisible characters inside.
    ("3\u200b师", D),
    ("1\u200d2\u200c师", D),
    ("第\ufeff十二师", D),
    ("3\u00ad师", D),
    ("3\u180e团", D),
    ("12\u2060旅", D),
    ("3\u0301师", D),
    ("3\u3164师", D),  # Hangul filler
    ("3\u200e\u200f师", D),
    # Separators and brackets between number and level.
    ("12-师", D),
    ("12·师", D),
    ("12（师）", D),
    ("12 师", D),
    ("12_师", D),
    ("12/师", D),
    ("12.师", D),
    ("12、师", D),
    ("12—师", D),
    ("12\u3000师", D),
    ("第 (12) 师", D),
    ("第 三 十 八 军", D),
    ("三\u3000十\u3000八\u3000集\u3000团\u3000军", D),
    ("【3】团", D),
    # Placeholders.
    ("ｘ师", D),
    ("Ｘ团", D),
    ("××师", D),
    ("某某团", D),
    ("原某师某团", D),
    ("xx旅", D),
    ("*师*团", D),
    # Kinds of unit after a number.
    ("5旅", D),
    ("第5特战旅", D),
    ("3合成旅", D),
    ("3重型合成旅", D),
    ("171舰", D),
    ("第3舰队", D),
    ("三大队", D),
    ("五中队", D),
    ("二分队", D),
    ("21基地", D),
    ("第二十二基地", D),
    ("12雷达站", D),
    ("8341部队", D),
    # Arms words between the number and the level.
    ("12装甲师", D),
    ("3合成营", D),
    ("71陆航旅", D),
    ("15空降军", D),
    ("3防空旅", D),
    ("2炮兵团", D),
    ("5工兵营", D),
    ("3导弹旅", D),
    ("7电子对抗团", D),
    ("2勤务营", D),
    ("4保障营", D),
    ("1海军陆战旅", D),
    ("3机械化步兵师", D),
    ("12装·甲师", D),
    ("3 合 成 旅", D),
    # A level followed by a word that starts like an exception (连同 / 连同志, 军医 / 军医院).
    ("3连同志们", D),
    ("3連同誌們", D),
    ("38军医院", D),
    ("38军干部", D),
    ("38军装甲师", D),
    ("3营运输连", D),
    ("3团结束训练", D),
    ("在3师从事通信工作", D),
    ("3连任排长", D),
    ("在3旅行军途中", D),
    # Cover numbers and the words for designations.
    ("66017部队", C),
    ("６６０１７部队", C),
    ("六六零一七部队", C),
    ("66017部", C),
    ("6 6 0 1 7 部", C),
    ("66-017部队", C),
    ("陆陆零壹柒部队", C),
    ("六六洞幺拐部队", C),
    ("66017部隊", C),
    ("⑥⑥⓪①⑦部队", C),
    ("66O17部队", C),  # the letter O for zero
    ("我在66017部队服役", C),
    ("代号66017", C),
    ("部队代号", D),
    ("番号", D),
    ("番號", D),
    ("部队番号不详", D),
    # English and pinyin.
    ("3rd Division", D),
    ("38th Group Army", D),
    ("No.12 Regiment", D),
    ("３ｒｄ　Ｄｉｖｉｓｉｏｎ", D),
    ("陆军3rd Brigade", D),
    ("3shi5tuan", D),
    ("Unit 66017", C),
    ("66017 troops", C),
    # --- What must pass -------------------------------------------------------------------
    ("", None),
    # Services and large formations: what the clerk is told to write.
    ("陆军", None),
    ("海军", None),
    ("空军", None),
    ("火箭军", None),
    ("武警部队", None),
    ("北部战区", None),
    ("北部战区陆军", None),
    ("联勤保障部队", None),
    ("战略支援部队", None),
    ("解放军", None),
    ("海军航空兵", None),
    ("北海舰队", None),
    ("武警山东总队", None),
    ("某部", None),  # "some unit": vague on purpose, no designation
    ("某部队", None),
    ("第二炮兵", None),  # the former name of 火箭军
    ("第二炮兵部队", None),
    ("二炮", None),
    ("新四军", None),  # historical army of 1937-47
    # Words with a level character.
    ("师范", None),
    ("第一师范", None),
    ("师范大学", None),
    ("师傅", None),
    ("张三师傅", None),
    ("二师兄", None),
    ("老师", None),
    ("教师", None),
    ("一级教师", None),
    ("律师", None),
    ("团结", None),
    ("团员", None),
    ("共青团员", None),
    ("团队", None),
    ("零团费旅游", None),
    ("连续", None),
    ("连续服役十二年", None),
    ("连续工作十年", None),
    ("连长", None),  # a rank word alone; 3连长 above is refused
    ("排长", None),
    ("营业", None),
    ("营业员", None),
    ("营养", None),
    ("经营", None),
    ("军人", None),
    ("军队", None),
    ("军烈属", None),
    ("八一", None),
    ("八一军旗", None),
    ("第四军医大学", None),
    ("泰安市第一军休所", None),
    ("旅游", None),
    ("旅行", None),
    ("王建军", None),
    ("李志军", None),
    # Numbers before a level character in ordinary phrases.
    ("一连串", None),
    ("一连三天", None),
    ("一连气儿跑了十里", None),
    ("一师一优课", None),  # a teaching programme
    ("三连冠", None),  # a sports streak
    ("五连胜", None),
    ("十一连休", None),
    ("三军仪仗队", None),  # "the three services": 三军 is not the 3rd army
    ("海、陆、空三军", None),
    ("千军万马", None),
    ("乱成一团", None),
    ("一团糟", None),
    ("百团大战", None),  # a battle of 1940
    ("一支队伍", None),
    ("一排房子", None),
    ("2排5号", None),
    ("第一排座位", None),
    ("二连浩特", None),  # a city
    ("第3站", None),
    ("一站式服务", None),
    ("10000部手机", None),
    ("得了第一，连长表扬了他", None),
    # Addresses, dates, numbers.
    ("十字路口", None),
    ("第一中学", None),
    ("2班", None),
    ("高三2班", None),
    ("5号楼", None),
    ("6号楼2单元301室", None),
    ("1978-03-01", None),
    ("1985年入伍", None),
    ("13812345678", None),
    ("0538-8221234", None),
    ("人民路12号", None),
    ("3单元", None),
    ("370902198503011234", None),
    ("泰安市供销合作社", None),
    ("泰安市泰山区上高街道", None),
    ("37090219850301123X", None),
    ("zhang3lian@163.com", None),
    ("clerk-01", None),
    ("Room 301", None),
    ("7ce42c82-4bde-4e8c-b5bf-992dc9e9c616", None),  # a record id
    ("3rd floor", None),
    # Traditional spellings of ordinary words.
    ("師範", None),
    ("團結", None),
    ("連續", None),
    ("營業", None),
    ("軍人", None),
    ("旅遊", None),
    ("陸軍", None),
]

REFUSED = [(t, k) for t, k in SPELLINGS if k is not None]
ALLOWED = [t for t, k in SPELLINGS if k is None]


def test_the_table_is_big_and_has_no_duplicates() -> None:
    """The table covers both sides with many real spellings, each once."""
    assert len(REFUSED) >= 80 and len(ALLOWED) >= 80
    assert len({t for t, _k in SPELLINGS}) == len(SPELLINGS)


@pytest.mark.parametrize(("text", "kind"), SPELLINGS)
def test_spelling(text: str, kind: str | None) -> None:
    """Each spelling is refused with its kind, or passes; and refused ones are refused inside a
    sentence too, and keep their kind there."""
    finding = find_designation(text, "服役单位")
    assert (finding.kind if finding else None) == kind, (text, finding)
    if kind is not None:
        in_sentence = find_designation(f"曾在{text}服役", "服役单位")
        assert in_sentence is not None and in_sentence.kind == kind


@pytest.mark.parametrize(("text", "kind"), REFUSED)
def test_message_says_what_to_write_instead(text: str, kind: str) -> None:
    """The refusal names the field, the kind of number, and the advice."""
    finding = find_designation(text, "服役单位")
    assert finding is not None
    assert ADVICE in finding.message and "服役单位" in finding.message
    assert ("部队代号" if kind == "cover_number" else "部队番号") in finding.message


def test_the_finding_quotes_what_was_typed() -> None:
    """The quoted text is the clerk's own, invisible characters and full-width digits included,
    at the offsets where it stands, so the message can be matched against the field."""
    typed = "服役于陆军第１\u200b２师\u00ad三团，后转业"
    finding = find_designation(typed, "服役单位")
    assert finding is not None
    assert finding.text == "第１\u200b２师\u00ad三团"
    assert typed[finding.start : finding.end] == finding.text
    assert f"“{finding.text}”" in finding.message
    cover = find_designation("在６６０１７部\u200d隊服役")
    assert (
        cover is not None and cover.text == "６６０１７部\u200d隊" and cover.kind == "cover_number"
    )


def test_every_designation_in_a_text_is_listed() -> None:
    """find_designations lists each separate designation in order, not only the first."""
    found = find_designations("先在3师，后调66017部队，又到某团")
    assert [(f.text, f.kind) for f in found] == [
        ("3师", "designation"),
        ("66017部队", "cover_number"),
        ("某团", "designation"),
    ]


def test_scan_reaches_nested_fields() -> None:
    """A designation hidden in a nested form field is found and named by its path; one finding
    per field, the first."""
    found = scan_fields({"service": {"units": ["陆军", "3师5团", "2营，后到66017部队"]}})
    assert [(f.field, f.text) for f in found] == [
        ("service.units[1]", "3师5团"),
        ("service.units[2]", "2营"),
    ]


def test_scan_text_values_walks_a_whole_payload() -> None:
    """Every string of a record payload is scanned — person, fields, audit notes and change
    lists, keys that are free text — and each finding carries its path, in document order."""
    payload = {
        "person": {"name": "张三", "former_names": ("李四", "王五团")},
        "fields": {"service_unit": "陆军", "main_requests": "我在66017部队服役", "n": 3},
        "audit": [
            {"note": "核对无误", "changes": [["service_unit", "3師", "陆军"]]},
            {"note": None, "changes": {"某团": "陆军"}},
        ],
        "entered_by": "clerk-01",
    }
    found = scan_text_values(payload, "record")
    assert [(f.field, f.text) for f in found] == [
        ("record.person.former_names[1]", "五团"),
        ("record.fields.main_requests", "66017部队"),
        ("record.audit[0].changes[0][1]", "3師"),
        ("record.audit[1].changes.某团", "某团"),
    ]
    assert [f.text for f in scan_text_values({"note": "先在3师，后到5团"})] == ["3师", "5团"]
    assert scan_text_values("3师", "note")[0].field == "note"
    assert scan_text_values(None) == [] and scan_text_values(b"3\xe5\xb8\x88") == []


def test_deep_nesting_does_not_recurse() -> None:
    """A hostile payload nested deeper than the recursion limit is still scanned."""
    deep: object = "第3师"
    for _ in range(sys.getrecursionlimit() + 100):
        deep = [deep]
    assert [f.text for f in scan_text_values(deep)] == ["第3师"]


def test_traditional_forms_fold_like_simplified() -> None:
    """Every traditional form in the table folds to its simplified character, so each refused
    and allowed row behaves the same when typed in traditional characters."""
    for trad, simp in TRADITIONAL.items():
        assert fold(trad) == simp
    to_trad = {s: t for t, s in TRADITIONAL.items() if len(t) == 1}
    for text, kind in SPELLINGS:
        trad = "".join(to_trad.get(ch, ch) for ch in text)
        finding = find_designation(trad)
        assert (finding.kind if finding else None) == kind, (trad, finding)


def test_fast_path_anchor_list_is_complete() -> None:
    """The fast path skips a text with no character from ANCHORS + NFKC_ANCHORS; that is safe
    only if every character of Unicode whose folding yields an anchor is in the list."""
    anchors = set(ANCHORS)
    needed = {
        chr(o)
        for o in range(0x110000)
        if not 0xD800 <= o <= 0xDFFF
        and chr(o) not in anchors
        and anchors & set(classified._fold_char(chr(o)))
    }
    assert needed == set(NFKC_ANCHORS)


COMMON_VALUES = [
    "张三",
    "王建国",
    "泰安市泰山区上高街道",
    "人民路12号3单元501室",
    "1978-03-01",
    "13812345678",
    "370902198503011234",
    "泰安市供销合作社",
    "岱岳区人民医院",
    "本乡镇",
    "clerk-01",
]


@pytest.mark.parametrize("value", COMMON_VALUES)
def test_common_field_values_take_the_fast_path(value: str) -> None:
    """Names, addresses, dates, phone and ID numbers (most of what ingest scans) are passed
    without folding: ASCII, or no character that could fold to a level character. A micro
    check of the cost, without timing anything."""
    assert value.isascii() or classified._ANCHOR.search(value) is None
    assert find_designation(value) is None


@pytest.mark.parametrize(
    "text",
    [
        "一 " * 5000 + "军人",
        "三" * 10000 + "师范",
        "某" * 10000 + "师范",
        "6 " * 10000 + "部门",
        "3装甲 " * 3000 + "师范",
        "1" * 100000 + "部门",
        "3rd " * 5000 + "floor",
    ],
)
def test_long_hostile_texts_are_scanned_in_one_pass(text: str) -> None:
    """Long runs of numerals, separators and arms words that never become a designation are
    passed; the patterns are possessive and anchored so this takes milliseconds, not the
    quadratic seconds a naive pattern needs (no timing assertion: a regression shows as a slow
    test)."""
    assert find_designation(text) is None
