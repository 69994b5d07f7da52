"""The operator's decision, pure: plan(run, observed, now) -> actions and the new status.

    inputs.py        RunView, Observed, PlanSettings, Refusal: what plan() decides from
    actions.py       what it decides: the actions and the Plan
    status_draft.py  the status being built, and the actions that go with it
    plan.py          plan(): the stage machine of one run
    transitions.py   failing, holding (Blocked), reopening, releasing children
    attempts.py      attempts of a stage and their pods: one writer, stuck, start timeout
    blockers.py      why a run cannot take its next step
    conditions.py    the run's conditions, derived from its phase and blockers
    spec_edits.py    what an edit of a running or finished run does
    best_policy.py   status.best and the base policy's evaluation
    plan_loop.py     plan, read the reports and create the children it asks for, plan again

Each module imports only from those above it in the dependency order inputs -> actions
-> status_draft -> the rest -> plan -> plan_loop; none imports plan.py for its types.
"""
