"""The night demo's summary: which host was emptied and could be powered off."""

from __future__ import annotations

from virtbalance.lab.demo.actioner_view import MigrationView, PlanView
from virtbalance.lab.demo.night import NightStory, night_summary


def migration(domain: str, source: str, destination: str, finished: float) -> MigrationView:
    return MigrationView(
        domain,
        f"domain:{domain}",
        source,
        destination,
        "consolidate",
        "done",
        finished - 2,
        finished,
        None,
    )


def test_the_summary_names_the_emptied_host_as_one_that_could_be_powered_off():
    story = NightStory(
        started_at=100.0,
        placement_before={"web1": "hv1", "mail2": "hv2", "cron3": "hv3"},
        cpu_before={"hv1": 0.05, "hv2": 0.05, "hv3": 0.01},
        firing_at=200.0,
        plan=PlanView(
            "4",
            201.0,
            "executed",
            "",
            ("hv3",),
            (migration("cron3", "hv3", "hv1", 230.0),),
            (),
            "consolidate",
        ),
        emptied=("hv3",),
        placement_after={"web1": "hv1", "mail2": "hv2", "cron3": "hv1"},
        cpu_after={"hv1": 0.06, "hv2": 0.05, "hv3": 0.0},
    )
    text = night_summary(story, ["hv1", "hv2", "hv3"])
    table = text.split("state\n", 1)[1].split("\n\n", 1)[0]
    rows = {line.split()[0]: line for line in table.splitlines()}
    assert set(rows) == {"hv1", "hv2", "hv3"}
    assert rows["hv3"].endswith("emptied: could be powered off")
    assert rows["hv3"].split()[3:5] == ["1", "0"]  # guests before, after
    assert rows["hv1"].endswith("running")
    assert "consolidate plan 4: cron3 hv3->hv1" in text
    assert (
        'hv3 runs nothing now: it could be powered off (virtbalance_host_emptied{host="hv3"} = 1'
        in text
    )
    assert "alert firing -> host emptied" in text and "30.0s" in text


def test_without_a_consolidation_the_summary_says_so():
    story = NightStory(100.0, {"web1": "hv1"}, {"hv1": 0.05}, placement_after={"web1": "hv1"})
    text = night_summary(story, ["hv1"])
    assert "no consolidation happened" in text
    assert "could be powered off" not in text
