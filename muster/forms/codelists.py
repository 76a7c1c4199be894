"""The code lists the forms choose from (S-02). Each is an ordered mapping code → label; a form
stores the code and shows the label. Sans-I/O data only.

Ethnicity follows GB/T 3304 (the ID card's table, so a card read fills the form directly);
political status follows GB/T 4762. The others are the answer lists of the 2018 collection
plans, with short stable ASCII codes so a record stays readable when a label is reworded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = [
    "BENEFITS",
    "CODE_LISTS",
    "DISABILITY_GRADES",
    "DISABILITY_NATURES",
    "EMPLOYMENT_STATUSES",
    "ETHNICITIES",
    "HOUSING",
    "INSURANCES",
    "POLITICAL_STATUSES",
    "RANK_CLASSES",
    "RED_ARMY_GROUPS",
    "RELATIONS",
    "RESETTLEMENT_MODES",
    "RETIREMENT_TYPES",
    "TRANSFER_MODES",
    "code_for",
]

# GB/T 3304 ethnicity codes, with the names as printed on the ID card (the standard's name less
# the trailing 族). 97 and 98 are the standard's "other" and "of foreign origin" entries.
ETHNICITIES: Final[dict[str, str]] = {
    "01": "汉", "02": "蒙古", "03": "回", "04": "藏", "05": "维吾尔", "06": "苗", "07": "彝",
    "08": "壮", "09": "布依", "10": "朝鲜", "11": "满", "12": "侗", "13": "瑶", "14": "白",
    "15": "土家", "16": "哈尼", "17": "哈萨克", "18": "傣", "19": "黎", "20": "傈僳", "21": "佤",
    "22": "畲", "23": "高山", "24": "拉祜", "25": "水", "26": "东乡", "27": "纳西", "28": "景颇",
    "29": "柯尔克孜", "30": "土", "31": "达斡尔", "32": "仫佬", "33": "羌", "34": "布朗",
    "35": "撒拉", "36": "毛南", "37": "仡佬", "38": "锡伯", "39": "阿昌", "40": "普米",
    "41": "塔吉克", "42": "怒", "43": "乌孜别克", "44": "俄罗斯", "45": "鄂温克", "46": "德昂",
    "47": "保安", "48": "裕固", "49": "京", "50": "塔塔尔", "51": "独龙", "52": "鄂伦春",
    "53": "赫哲", "54": "门巴", "55": "珞巴", "56": "基诺", "97": "其他",
    "98": "外国血统中国籍人士",
}  # fmt: skip

# GB/T 4762 political status.
POLITICAL_STATUSES: Final[dict[str, str]] = {
    "01": "中共党员", "02": "中共预备党员", "03": "共青团员", "04": "民革党员",
    "05": "民盟盟员", "06": "民建会员", "07": "民进会员", "08": "农工党党员",
    "09": "致公党党员", "10": "九三学社社员", "11": "台盟盟员", "12": "无党派人士",
    "13": "群众",
}  # fmt: skip

RANK_CLASSES: Final[dict[str, str]] = {"officer": "军官", "nco": "士官", "conscript": "义务兵"}

# Transferred officers (S-01): how they were placed on leaving.
TRANSFER_MODES: Final[dict[str, str]] = {
    "planned": "计划分配",
    "self_chosen": "自主择业",
    "self_employed": "自谋职业",
    "enterprise": "企业军转干部",
}

# Retired soldiers (S-01, S-02): resettlement mode.
RESETTLEMENT_MODES: Final[dict[str, str]] = {
    "assigned_job": "政府安排工作",
    "self_employment": "自主就业",
    "self_employed": "自谋职业",
    "state_support": "国家供养",
}

RETIREMENT_TYPES: Final[dict[str, str]] = {
    "retired_cadre_li": "离休干部",
    "retired_cadre": "退休干部",
    "retired_nco": "退休士官",
}

RED_ARMY_GROUPS: Final[dict[str, str]] = {
    "red_army": "红军老战士",
    "west_route": "西路军红军老战士",
    "dispersed": "红军失散人员",
}

EMPLOYMENT_STATUSES: Final[dict[str, str]] = {
    "government": "机关事业单位",
    "enterprise": "企业",
    "public_welfare": "公益性岗位",
    "self_employed": "个体经营",
    "unemployed": "失业",
    "laid_off": "下岗",
    "retired": "退休",
    "farming": "务农",
}

HOUSING: Final[dict[str, str]] = {
    "own": "自有住房",
    "public_rental": "公租房、廉租房",
    "rented": "租住",
    "with_family": "与亲属同住",
    "none": "无固定住所",
}

INSURANCES: Final[dict[str, str]] = {
    "medical": "职工基本医疗保险",
    "rural_medical": "新型农村合作医疗",
    "urban_resident_medical": "城乡居民基本医疗保险",
    "employee_pension": "职工基本养老保险",
    "urban_resident_pension": "城镇居民养老保险",
    "rural_pension": "新型农村养老保险",
}

BENEFITS: Final[dict[str, str]] = {
    "regular_pension": "定期抚恤金",
    "regular_subsidy": "定期生活补助",
    "disability_pension": "伤残抚恤金",
    "minimum_living": "最低生活保障",
    "disability_subsidy": "残疾人两项补贴",
    "medical_aid": "医疗救助",
}

DISABILITY_GRADES: Final[dict[str, str]] = {
    str(n): f"{label}级" for n, label in enumerate("一二三四五六七八九十", start=1)
}

DISABILITY_NATURES: Final[dict[str, str]] = {"war": "因战", "duty": "因公", "illness": "因病"}

# Family categories: the person's relation to the soldier (S-01). The labels are the codes, as
# the initial data and the import template already write them. The one list: import, forms,
# console and the synthetic data all use it, in this order.
RELATIONS: Final[dict[str, str]] = {r: r for r in ("父母", "配偶", "子女", "兄弟姐妹", "抚养人")}

CODE_LISTS: Final[dict[str, dict[str, str]]] = {
    "ethnicity": ETHNICITIES,
    "political_status": POLITICAL_STATUSES,
    "rank_class": RANK_CLASSES,
    "transfer_mode": TRANSFER_MODES,
    "resettlement_mode": RESETTLEMENT_MODES,
    "retirement_type": RETIREMENT_TYPES,
    "red_army_group": RED_ARMY_GROUPS,
    "employment_status": EMPLOYMENT_STATUSES,
    "housing": HOUSING,
    "insurances": INSURANCES,
    "benefits": BENEFITS,
    "disability_grade": DISABILITY_GRADES,
    "disability_nature": DISABILITY_NATURES,
    "relation": RELATIONS,
}


def code_for(codes: Mapping[str, str], value: str) -> str | None:
    """The code ``value`` stands for in a code list: a code is itself, a label its code; None if
    it is neither. Import files carry labels (as departments write them), forms store codes."""
    if value in codes:
        return value
    return next((code for code, label in codes.items() if label == value), None)
