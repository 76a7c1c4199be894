"""The admin's words: every key has its Chinese and its English, English carries no Chinese
(but the link back to Chinese), a page family never shadows a navigation word, and no template
writes a Chinese label of its own that ``?lang=en`` could not translate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.admin.text import FAMILIES, LANGS, other_lang, pick_lang, texts

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
ADMIN = Path(__file__).parents[2] / "controller" / "admin"
TEMPLATES = ADMIN / "templates"
# The family each template's page renders with.
FAMILY_OF = {
    **{t: "fleet" for t in ("fleet_alerts", "fleet_device", "fleet_devices", "fleet_flow")},
    "fleet_overview": "fleet",
    "codes": "codes",
    "accounts": "accounts",
    **{t: "account" for t in ("login", "me", "logout")},
    "base": "common",
    "confirmation": "confirmation",
    **{
        t: "records"
        for t in (
            "audit", "deadlines", "progress", "review_confirm", "review_list",
            "review_record", "township", "weekly",
        )
    },
}  # fmt: skip
OURS = sorted(p.name for p in TEMPLATES.glob("*.html"))
# The S-30 centre pages render the applicant's templates with the centre's words as ``c``.
CENTRE_TEMPLATES = sorted((ADMIN.parent / "applications" / "templates").glob("*.html"))
# Pages that write their markup in Python, and the family their ``t["key"]`` / ``_t("key")``
# words come from.
PY_PAGES = {
    "comparison_pages.py": "comparison",
    "task_pages.py": "tasks",
    "release_pages.py": "releases",
}
# Words that are the same, or meant, in both languages.
SAME_IN_BOTH = {"switch"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_key_has_chinese_and_english(family: str) -> None:
    """Each (zh, en) pair is two non-empty strings; the English one has no Chinese character
    and the Chinese one is not the English one copied."""
    for key, (zh, en) in FAMILIES[family].items():
        assert zh.strip() and en.strip(), f"{family}.{key} is empty in a language"
        if key in SAME_IN_BOTH:
            continue
        assert not CJK.search(en), f"{family}.{key} has Chinese in English: {en!r}"
        assert zh != en or not re.search("[A-Za-z]{3}", zh), f"{family}.{key} is untranslated"


def test_no_family_shadows_a_common_word() -> None:
    common = set(FAMILIES["common"])
    for family, table in FAMILIES.items():
        if family != "common":
            assert not common & set(table), f"{family} redefines {common & set(table)}"


def test_lookup_gives_common_and_family_words_in_the_asked_language() -> None:
    assert texts("en", "records")["nav_progress"] == "Progress"
    assert texts("en", "records")["approve"] == "Approve"
    assert texts("zh", "fleet")["stale"] == FAMILIES["fleet"]["stale"][0]
    # Anything but "en" is Chinese, as an unknown ?lang= is refused before it gets here.
    assert texts("fr", "fleet") == texts("zh", "fleet")


@pytest.mark.parametrize(
    "hostile", ["", "EN", "en ", "zh-CN", "../en", "en\x00", None, 1, "<script>"]
)
def test_a_language_we_do_not_have_falls_back_to_chinese(hostile: object) -> None:
    assert pick_lang(hostile) == "zh"
    assert pick_lang("en") == "en" and other_lang("en") == "zh" and other_lang("zh") == "en"
    assert set(LANGS) == {"zh", "en"}


@pytest.mark.parametrize("template", OURS)
def test_every_template_has_its_family(template: str) -> None:
    """A new template is checked like the others from the day it is added."""
    assert template.removesuffix(".html") in FAMILY_OF, f"{template}: add it to FAMILY_OF"


@pytest.mark.parametrize("module", sorted(PY_PAGES))
def test_pages_written_in_python_take_their_words_from_their_family(module: str) -> None:
    """Those pages write no Chinese of their own either, and every word they ask for exists:
    a missing one would be a KeyError on the page."""
    text = (ADMIN / module).read_text()
    assert not CJK.search(text), f"{module} writes {''.join(CJK.findall(text))!r} itself"
    asked = set(re.findall(r"\b_?t(?:\[|\()\s*[\"'](\w+)[\"']\s*(?:\]|,)", text))
    assert asked, f"{module} asks for no word: the pattern no longer matches its lookups"
    table = texts("zh", PY_PAGES[module])
    missing = sorted(k for k in asked if k not in table)
    assert not missing, f"{module} asks for {missing}"


def test_every_task_kind_and_status_and_release_state_has_its_words() -> None:
    """The tasks and releases pages name kinds, statuses and states from the tables (a bare
    code otherwise); the Chinese task statuses are those the township console shows."""
    from controller.records.tasks import STATUS_NAMES
    from controller.releases.rollouts import ACTIVE, FAILED_STATES, REPORT_STATES

    zh, en = texts("zh", "tasks"), texts("en", "tasks")
    for status, name in STATUS_NAMES.items():
        assert zh[f"status_{status}"] == name and en[f"status_{status}"]
    for kind in ("problem", "missing"):
        assert zh[f"kind_{kind}"] and en[f"kind_{kind}"]
    states = {*ACTIVE, "aborted", "completed", "pending", *REPORT_STATES, *FAILED_STATES}
    for lang in LANGS:
        missing = sorted(s for s in states if f"state_{s}" not in texts(lang, "releases"))
        assert not missing, f"releases has no {lang} word for {missing}"


@pytest.mark.parametrize("template", OURS)
def test_templates_write_no_chinese_label_of_their_own(template: str) -> None:
    """A Chinese word in a template would show on the English page too: every label comes
    from the text tables (comments aside)."""
    text = re.sub(r"\{#.*?#\}", "", (TEMPLATES / template).read_text(), flags=re.S)
    found = CJK.findall(text)
    assert not found, f"{template} writes {''.join(found)!r} itself"


@pytest.mark.parametrize("template", OURS)
def test_every_word_a_template_asks_for_is_in_its_family(template: str) -> None:
    """``t.key`` and ``t['prefix_' ~ x]`` of a template resolve in the family its page renders
    with: a missing key renders as nothing, in both languages."""
    text = (TEMPLATES / template).read_text()
    table = texts("zh", FAMILY_OF[template.removesuffix(".html")])  # type: ignore[arg-type]
    keys = set(re.findall(r"\bt\.(\w+)", text)) | set(re.findall(r"\bt\['(\w+)'\]", text))
    missing = sorted(k for k in keys - {"get", "format"} if k not in table)
    assert not missing, f"{template} asks for {missing}"
    for prefix in set(re.findall(r"\bt\[\s*'(\w+_)'\s*[~+]", text)):
        assert any(k.startswith(prefix) for k in table), f"{template}: no {prefix}* words"


@pytest.mark.parametrize("template", CENTRE_TEMPLATES, ids=lambda p: p.name)
def test_every_centre_word_an_application_template_asks_for_is_in_its_family(
    template: Path,
) -> None:
    text = template.read_text()
    asked = set(re.findall(r"\bc\.(\w+)", text))
    table = texts("en", "applications")
    missing = sorted(k for k in asked if k not in table)
    assert not missing, f"{template.name} asks for {missing}"


def test_every_category_field_and_level_has_its_name_in_both_languages() -> None:
    """The records pages name categories, form fields and levels from the text tables: one
    missing would show a bare code (or the Chinese) on the English page."""
    from muster.forms import FORMS
    from muster.records import CATEGORY_NAMES
    from muster.regions import LEVEL_NAMES

    zh, en = texts("zh", "records"), texts("en", "records")
    for category, name in CATEGORY_NAMES.items():
        assert zh[f"cat_{category.value}"] == name and en[f"cat_{category.value}"]
    for form in FORMS.values():
        for f in form.fields:
            # Chinese pages show the form's own label (it differs by category); English this.
            assert zh[f"field_{f.key}"], f.key
            assert not CJK.search(en[f"field_{f.key}"]), f.key
    for level, name in LEVEL_NAMES.items():
        assert zh[f"level_{level}"] == name and en[f"level_{level}"]
