"""A host that lets RRM enforce who may do what, instead of checking it itself.

By default ``rrm.bootstrap()`` trusts its host: the actor and role of a command are
the host's word. A host that authenticates its users but wants RRM's rule (the one
``rrm serve`` enforces) passes an ``AccessPolicy`` and a ``Principal`` per command.
"""

from datetime import UTC, datetime

import rrm
from rrm.testing import FakeClock

clock = FakeClock(datetime(2025, 1, 6, 15, tzinfo=UTC))
policy = rrm.AccessPolicy(
    # Every USTR officer holding "ustr" may act on every case the U.S. brings.
    grants=(rrm.Grant(role="ustr", agency="USTR", complainant="US"),)
)
engine = rrm.bootstrap("sqlite://", clock=clock, upgrade=True, authorizer=policy)

# The host has authenticated these people; `via` names the credential it checked.
ana = rrm.Principal(
    principal_id="ana",
    roles=frozenset({"ustr"}),
    agencies=frozenset({"USTR"}),
    via="host-sso:ana",
)
luis = rrm.Principal(
    principal_id="luis", roles=frozenset({"respondent"}), via="host-sso:luis"
)
mallory = rrm.Principal(
    principal_id="mallory", roles=frozenset({"respondent"}), via="host-sso:mallory"
)

case = engine.open_case(
    rrm.OpenCase(
        workflow="usmca-31a",
        initiation="request",
        complainant="US",
        respondent="MX",
        facility=rrm.Facility(
            facility_id="MX-001",
            name="Planta Norte",
            owner="Grupo Ejemplo",
            country=rrm.Party.MX,
        ),
        claim=rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing"),
        officers=(rrm.Officer(officer_id="luis", role="respondent"),),
        external_ref="USTR-2025-001",
        actor="ana",
        role="ustr",
    ),
    principal=ana,  # allowed by the USTR grant, though ana is not assigned
)

agree = rrm.FireEvent(
    case_id=case.case_id, event="respondent_agrees", actor="mallory", role="respondent"
)
try:
    engine.fire(agree, principal=mallory)  # holds the role, but not on this case
except rrm.NotPermitted as refused:
    print("refused:", refused)

case = engine.fire(
    rrm.FireEvent(
        case_id=case.case_id, event="respondent_agrees", actor="luis", role="respondent"
    ),
    principal=luis,  # assigned to the case as the respondent
)
last = engine.history(case.case_id)[-1]
print(f"{last.event} by {last.actor} as {last.role}, proven by {last.via}")
print(
    "events luis may record now:",
    [a.transition.event for a in engine.available_events(case, principal=luis)],
)
