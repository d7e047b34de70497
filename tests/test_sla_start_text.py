"""The SLA start's choice of rule (worker.sla.tracker._select, remembered per ``Sla`` object and
escalation) is ``Sla.select``'s: on every combination of the demo policy's platforms, kinds,
priorities, author tags and roles, asked twice, and for a reloaded policy whose rules differ."""

from __future__ import annotations

import itertools

from worker.policy import load_policy
from worker.settings import REPO_ROOT
from worker.sla.config import Sla
from worker.sla.tracker import _select


def test_remembered_selection_is_select() -> None:
    sla = load_policy(REPO_ROOT / "policies" / "demo-shop.yaml").policy.sla
    assert sla is not None
    # the same rules in another order (vip last): a reloaded policy's Sla answers for itself
    reordered = Sla.model_validate({"policies": [*sla.policies[1:2], sla.policies[0], *sla.policies[2:]]})
    platforms = ["instagram", "x", "youtube", "whatsapp"]
    kinds = ["dm", "comment", "mention"]
    priorities = ["low", "normal", "high", "urgent"]
    tags = [[], ["vip"], ["other", "vip"], ["other"], ["VIP"]]
    roles = ["tier1", "moderator", "vip_care", "manager"]
    chosen = set()
    for _ in range(2):
        for platform, kind, priority, tag, role in itertools.product(platforms, kinds, priorities, tags, roles):
            for policy in (sla, reordered):
                expected = policy.select(platform=platform, kind=kind, priority=priority, tags=tag, role=role)
                assert _select(policy, platform, kind, priority, tag, role) is expected, (platform, kind, tag, role)
                chosen.add((id(policy), expected.name if expected else None))
    assert {name for _, name in chosen} == {"vip", "moderation", "standard"}
    assert len(chosen) == 6  # each policy object chose each of its rules somewhere
