"""The tables behind the classified-designation filter (S-03, ``muster.classified``).

Data only: which characters fold to which, which words are unit levels and arms, and which ordinary
words that look like designations are let through, each decision with its reason. The filter
compiles these once at import. Every word here is written in *folded* form (simplified, financial
numerals kept as they are), because that is the text the patterns see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ALLOWED_PHRASES",
    "ANCHORS",
    "ARMS",
    "CHAIN_ONLY_LEVELS",
    "COVER_DIGITS",
    "ENGLISH_COVER_WORDS",
    "ENGLISH_LEVELS",
    "HAN_DIGITS",
    "HAN_SINGLE",
    "INVISIBLE",
    "LEVELS",
    "NFKC_ANCHORS",
    "NUMBER_FORMS",
    "PART_NOT_BEFORE",
    "PINYIN_LEVELS",
    "PLACEHOLDER_FORMS",
    "PLACEHOLDER_LEVELS",
    "STATION_ARMS",
    "TERMINATORS",
    "TRADITIONAL",
    "Level",
]

# --- Characters ------------------------------------------------------------------------------

# Traditional (and Japanese shinjitai) forms of every character the patterns and the exceptions
# below use, to simplified; taken from OpenCC's TSCharacters for exactly these characters, so no
# conversion library is needed. Financial numerals stay financial (貳→贰, 參→参, 陸→陆, 兩→两).
_TRADITIONAL_PAIRS = (
    "萬万專专業业東东個个箇个樂乐書书亂乱雲云從从儀仪夥伙體体偵侦剋克養养寫写軍军幾几齣出擊击劇剧務务動动區区醫医韆千昇升陞升單单衛卫蔘参發发髮发隻只檯台臺台颱台號号"
    "閤合衕同後后員员週周迴回団团團团糰团圓圆場场壘垒墾垦聲声備备孃娘學学対对對对導导屬属師师帳帐帶带乾干幹干榦干莊庄弾弹彈弹帰归彔录錄录録录總总戲戏戦战戰战搧扇託托"
    "掃扫揚扬護护枴拐柺拐拠据敎教數数旂旗無无麯曲麴曲機机殺杀棲栖橋桥歐欧歩步気气氣气測测漲涨遊游滾滚潛潜砲炮礮炮爺爷獨独環环電电療疗盤盘禮礼俬私種种稱称糧粮纍累紅红"
    "級级紀纪綫线線线練练組组結结繪绘續续綿绵綴缀編编繕缮翹翘聯联勝胜捨舍艦舰範范営营營营銜衔錶表裝装觀观規规訓训詞词請请讀读課课敗败購购貫贯費费資资贏赢車车轉转軸轴"
    "軽轻輕轻載载輸输邊边達达運运連连銷销鎖锁鎭镇鎮镇長长門门閥阀隊队霧雾麪面麫面麵面韓韩順顺頓顿預预餉饷舘馆館馆馬马駆驱驅驱駅驿騎骑齡龄"
    "優优兒儿據据歸归為为爲为產产産产織织職职計计訊讯設设診诊誌志鄉乡間间驛驿"
)
TRADITIONAL: dict[str, str] = dict(
    zip(_TRADITIONAL_PAIRS[0::2], _TRADITIONAL_PAIRS[1::2], strict=True)
)

# Characters folded before matching, beyond NFKC: number forms NFKC leaves alone, placeholders
# unified to "×", and the traditional table.
NUMBER_FORMS: dict[str, str] = {
    "○": "〇",  # U+25CB WHITE CIRCLE, typed as zero in 二○○八 / 六六○一七
    "◯": "〇",  # U+25EF LARGE CIRCLE, the same
    "〇": "〇",
    "卄": "二十",
    "廿": "二十",
    "卅": "三十",
    "卌": "四十",
    "壱": "壹",  # Japanese financial one
    "弐": "贰",  # Japanese financial two
    "貳": "贰",
    "貮": "贰",
    "弍": "贰",
    "弎": "叁",
    "參": "参",
    "叄": "叁",
    "兩": "两",
    "両": "两",
    "陸": "陆",
}
PLACEHOLDER_FORMS: dict[str, str] = dict.fromkeys("×✕✖✗✘╳⨯⤫⤬＊*□■☐◻◼", "×")

# Invisible characters that are not in a Unicode category the folder drops anyway (Cf, Mn, Me,
# Co, Cn, Cs): Hangul fillers are letters (Lo) but render as nothing.
INVISIBLE = "\u115f\u1160\u3164\uffa0"

# Punctuation that ends a phrase rather than separating a number from its level: a sentence
# "得了第一，连长表扬了他" is not "第一连". Every other punctuation, space or symbol folds to " ".
TERMINATORS = ",;!?。！？；，｡"

# --- Numerals ----------------------------------------------------------------------------------

# Chinese numeral characters after folding (financial ones included). A run of them is a number.
HAN_DIGITS = "〇零一二三四五六七八九十百千两幺壹贰叁肆伍陆柒捌玖拾佰仟参"

# Which of them count as a number when they stand ALONE before a level ("二营", "五团"). Left out:
#   伍 陆 肆 拾 参 — financial numerals that are ordinary words too: 入伍连队, 陆军, 放肆, 收拾,
#                   参军; alone they are the word, in a run (伍拾, 陆陆零) they are a number;
#   百 千        — 百团大战 (a battle), 千军万马 (an idiom);
#   幺           — 幺 is "one" only in spoken digit strings (cover numbers, below).
HAN_SINGLE = "〇零一二三四五六七八九十两壹贰叁柒捌玖"

# Digits of a cover number read out one by one (六六零一七, 陆陆洞幺柒): the military spoken
# digits 幺 (1), 洞 (0), 拐 (7), 勾 (9) count here only, five in a row before 部/部队.
COVER_DIGITS = "〇零一二三四五六七八九两幺洞拐勾壹贰叁肆伍陆柒捌玖参"

# --- Unit levels -------------------------------------------------------------------------------

Numbers = Literal["any", "strong", "digits3", "arms"]


@dataclass(frozen=True, slots=True)
class Level:
    """A unit level word and what may stand before it.

    ``numbers``: "any" — any number, a single Chinese numeral too ("二营"); "strong" — digits, a
    compound Chinese numeral or 第 ("38军", "三十八军", "第一军", but not "三军"); "digits3" —
    three digits or more, or 第 ("8341部队"; "3、部队生活" in a numbered list passes);
    "arms" — only with an arms word between ("12雷达站", not "第3站").
    ``not_before``: what follows the level character in an ordinary word (师范, 团结, 连续);
    regular-expression fragments, so an entry can guard against the next word ("服(?!役)": 军服
    is a uniform, 38军服役 is an army).
    """

    word: str
    numbers: Numbers
    not_before: tuple[str, ...] = ()
    why: str = ""


def _words(chars: str, *more: str) -> tuple[str, ...]:
    return (*chars, *more)


LEVELS: tuple[Level, ...] = (
    Level("集团军", "any", why="group army: always a formation"),
    Level(
        "师",
        "any",
        _words("范傅父母兄姐弟妹资专院德徒爷奶恩尊友哥叔姑娘", "生(?!活|产)"),
        why="division; 师范/师傅/师兄/师生/师专 are school and trade words. Left out on "
        "purpose: 师从, 师门, 师大 — in 3师从事, 3师门诊部, 3师大院 the number is a division",
    ),
    Level(
        "旅",
        "any",
        _words("游客馆店途程社顺伴费舍", "行(?!军|动)"),
        why="brigade; 旅游/旅行/旅馆/旅顺 are ordinary (but 3旅行军 is a brigade marching); "
        "旅美/旅日 never follow a number",
    ),
    Level(
        "团",
        "any",
        _words("员队体聚圆购委支年拜费籍课校扇歌徽旗餐", "结(?!束|业)", "伙(?!食|房)"),
        why="regiment; 团结/团员/团队/团购/团费 are ordinary (零团费); 3团结束, 3团伙食, "
        "3团日常, 3团建设, 3团组织, 3团子弟 still name a regiment. 团长 and 团部 after a number "
        "are refused: they name the regiment",
    ),
    Level(
        "营",
        "any",
        _words("业养销造利收房地口区盘私商帐寨缮", "运(?!输)", "救(?!护)"),
        why="battalion; 营业/营养/营销/营口/营房 are ordinary; 3营运输连, 3营生活 name a "
        "battalion; 营长 after a number is refused",
    ),
    Level(
        "连",
        "any",
        _words(
            "续带锁接忙载贯体衣襟环串冠胜败跳涨跌击号拍读写片绵篇着翘轴词线根番坐字招播映演赢输庄杀滚升假",
            "云港",
            "浩特",
            "同(?!志|学|乡|年)",
            "任(?!职|排|副|正|班|文|司|通|指|连)",
            "日(?!常)",
            "夜(?!间)",
            "通(?!信|讯)",
            "累(?!计)",
            "休(?!息|整)",
        ),
        why="company; 连续/连同/连锁, sports streaks (三连冠, 五连胜), holidays (十一连休) and "
        "places (连云港, 二连浩特) are ordinary, but 3连同志, 3连任排长, 3连通信员 name a "
        "company. 连长 is a rank word: alone it passes, after a number (3连长, 二连长) it "
        "names the company and is refused",
    ),
    Level("支队", "any", ("伍",), why="detachment; 一支队伍 is 'a team'"),
    Level(
        "大队",
        "any",
        ("人马",),
        why="group/battalion; 一大队人马 is 'a crowd'. A village production brigade "
        "(红旗公社3大队) is refused too: write the village's name",
    ),
    Level("中队", "any", why="squadron/company"),
    Level("分队", "any", why="detachment"),
    Level("总队", "any", why="武警 corps; 武警山东总队 (no number) passes"),
    Level("舰队", "any", why="fleet; 北海舰队/东海舰队/南海舰队 (no number) pass"),
    Level("基地", "any", why="numbered base (21基地, 第二十二基地)"),
    Level(
        "军",
        "strong",
        _words(
            "人队区事旗衔龄属训营校嫂功民用费需种歌徽港垦委令务籍史械火备情舰犬车马鞋帽被号礼纪规容威心魂体代迷方阀衣粮饷地转休界演乐烈",
            "分区",
            "医(?!院)",
            "工(?!兵)",
            "官(?!兵)",
            "装(?!甲)",
            "服(?!役|务)",
            "干(?!部)",
        ),
        why="army; a lone numeral is an ordinary word (三军仪仗队, 千军万马, 两军对垒, a name "
        "like 王一军); 军人/军区/军医 (第四军医大学), 军休所 and 军烈属 are ordinary, but "
        "38军服役, 38军医院, 38军政治部, 38军干部 name an army",
    ),
    Level(
        "舰",
        "strong",
        _words("艇船载炮桥首尾体员种名徽"),
        why="ship by hull number (171舰); 两舰编队 passes",
    ),
    Level(
        "部队",
        "digits3",
        why="unit by number (8341部队); 武警部队/联勤保障部队 (no number) pass; a list "
        "number (3、部队生活) passes",
    ),
    Level(
        "站",
        "arms",
        why="station: only 雷达站/通信站 and the like after a number; 第3站, 5站路, 一站式 pass",
    ),
)

# Below a company: refused only as part of a chain that starts with a designation (3连2排, 5团
# 3营2连3排1班); alone they are rows, seats and school classes (一排房子, 2排5号, 2班).
CHAIN_ONLY_LEVELS = ("排", "班")

# A placeholder (x, X, ×, 某, ××, 某某) before these is the S-03 pattern "x师x团x连" itself. Before
# 军, 舰, 部队, 部, 基地 and 站 it is how people write "a unit" without naming it (某部, 某部队,
# 某基地): those pass.
PLACEHOLDER_LEVELS = (
    "集团军",
    "师",
    "旅",
    "团",
    "营",
    "连",
    "支队",
    "大队",
    "中队",
    "分队",
    "总队",
)

# Arms and kinds written between the number and the level (12装甲师, 第5特战旅, 71陆航旅,
# 3重型合成旅, 7电子对抗团). Up to three in a row, each optionally with 兵.
ARMS: tuple[str, ...] = (
    "装甲",
    "机械化",
    "摩托化",
    "合成",
    "特战",
    "特种作战",
    "特种",
    "特勤",
    "陆航",
    "航空兵",
    "航空",
    "空降",
    "防空",
    "炮兵",
    "炮",
    "高炮",
    "高射",
    "工兵",
    "舟桥",
    "导弹",
    "地空导弹",
    "电子对抗",
    "电子战",
    "勤务",
    "保障",
    "后勤",
    "海军陆战",
    "陆战",
    "两栖",
    "山地",
    "边防",
    "海防",
    "守备",
    "通信",
    "防化",
    "侦察",
    "坦克",
    "步兵",
    "摩步",
    "机步",
    "雷达",
    "警卫",
    "轻型",
    "重型",
    "中型",
    "预备役",
    "独立",
    "骑兵",
    "岸防",
    "潜艇",
    "驱逐",
    "护卫",
    "登陆",
    "扫雷",
    "运输",
    "汽车",
    "教导",
    "新兵",
    "训练",
    "机动",
    "反坦克",
    "火箭",
    "工程",
    "测绘",
    "无人机",
)

# Before 站 only these count (第一气象站, 第一医疗站 are civilian).
STATION_ARMS: tuple[str, ...] = ("雷达", "观通", "通信", "导弹", "电子对抗", "侦察", "测控")

# Whole phrases that look like designations and are not: masked before matching. Regular
# expressions over folded text, each with its reason.
ALLOWED_PHRASES: tuple[tuple[str, str], ...] = (
    ("新四军", "the New Fourth Army of 1937-47: a historical name in many old soldiers' records"),
    ("第二炮兵", "the former name of 火箭军, a service (第二炮兵部队 passes like 火箭军部队)"),
    ("二连浩特", "a city in Inner Mongolia"),
    ("三营镇", "a town in 固原 (Ningxia)"),
    ("五营区", "a former district of 伊春 (Heilongjiang)"),
    ("[成作了]一团", "乱成一团, 抱成一团, 乱作一团: 'a heap', an idiom"),
    (
        "一团(?:糟|乱|和气|火|麻|雾|漆黑|黑|气|毛|线|肉|面|泥|棉|团)",
        "一团糟, 一团和气, 一团火: 'a lump of', an idiom",
    ),
    (
        "一连(?:串|几|数|好几|多|气|[一二三四五六七八九十两]+[天日次个年月周回遍场趟夜晚顿声])",
        "一连串, 一连几天, 一连三天, 一连气儿: 'in a row'",
    ),
    ("一师一优课", "a national teaching programme: one teacher, one good lesson"),
)

# After a five-digit cover number a bare 部 is the unit (66017部); these make it a measure word
# or another word instead (10000部手机, 12345部分).
PART_NOT_BEFORE: tuple[str, ...] = tuple("手电影车书作片剧分门长署位件落首法委级属下族机戏著曲")

# --- Latin script ------------------------------------------------------------------------------

# The same designations in English or pinyin ("3rd Division", "38th Group Army", "Unit 66017",
# "3shi5tuan"), matched case-blind after a number. Left out: "company" and "army" alone (the 3rd
# company I worked for, the 1st army hospital...), the abbreviations bde and bn (record ids are
# hexadecimal: 4bde-...), and pinyin words that are common syllables (pai, ban): a pinyin level
# must stand as its own word after the number.
ENGLISH_LEVELS: tuple[str, ...] = (
    "group army",
    "division",
    "regiment",
    "brigade",
    "battalion",
    "flotilla",
    "div",
    "regt",
)
ENGLISH_COVER_WORDS: tuple[str, ...] = ("unit", "troops", "troop", "military unit")
PINYIN_LEVELS: tuple[str, ...] = (
    "ji tuan jun",
    "jituanjun",
    "shi",
    "tuan",
    "ying",
    "lian",
    "lv",
    "jun",
)

# --- The fast path -----------------------------------------------------------------------------

# Every pattern needs one of these characters in the folded text; a text that folds to none of
# them cannot hold a finding.
ANCHORS = "师团营连军旅队舰基站部番代"

# Every character that is not itself an anchor but folds to text containing one (traditional and
# Japanese forms, CJK compatibility ideographs, Kangxi radicals, enclosed ideographs). Computed
# over all of Unicode by tests/unit/test_classified.py, which fails if this list goes stale.
NFKC_ANCHORS = "\u3239営団團師營糰艦軍連隊\uf983\uf99a\U0001f23a"
