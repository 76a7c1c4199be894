"""Region names from the division-code table, and the simulated fleet's layout that the
simulator and the controller's bulk registration must agree on."""

from __future__ import annotations

from muster.fleet_layout import simulated_device, simulated_fleet, townships
from muster.region_names import describe, region_name


def test_region_names_are_current_and_readable() -> None:
    """Provinces, cities and counties show today's names (岱岳区, not the 1985 name 郊区);
    municipal placeholders read as their municipality; townships show their code."""
    assert region_name("37") == "山东省"
    assert region_name("3709") == "泰安市"
    assert region_name("370911") == "岱岳区"
    assert region_name("1101") == "北京市市辖区"
    assert region_name("999999") == ""
    assert describe("370902001") == "山东省 泰安市 泰山区 001 乡镇"


def test_simulated_fleet_is_stable_unique_and_spread_like_the_campaign() -> None:
    """About 39,900 townships (S-12); two devices per township, a kiosk and a tablet (S-05);
    the same index always gives the same device; even a small fleet covers most provinces."""
    assert 39_000 < len(townships()) < 41_000
    fleet = simulated_fleet(2000)
    assert len({d.device_id for d in fleet}) == 2000
    assert simulated_device(1234) == fleet[1234]
    assert fleet[0].township_code == fleet[1].township_code
    assert (fleet[0].profile, fleet[1].profile) == ("fixed-kiosk", "portable-tablet")
    assert len({d.township_code[:2] for d in fleet}) >= 30
    assert all(len(d.township_code) == 12 and d.township_code.endswith("000") for d in fleet)
