"""When silver, gold and audit assets run by themselves: eagerly, but only on new data."""

from dagster import AutomationCondition


def on_new_data() -> AutomationCondition:
    """Dagster's `eager()`, triggered by an upstream whose *data version* changed.

    Every bronze materialization reports the load id of the newest load it holds as its data
    version, so a load that appended nothing leaves it unchanged and sets off nothing below.
    An upstream whose blocking check failed (in any run, e.g. another hospital's) holds it back.
    """
    new_data = AutomationCondition.any_deps_match(AutomationCondition.data_version_changed())
    return (
        AutomationCondition.in_latest_time_window()
        & (AutomationCondition.newly_missing() | new_data).since_last_handled()
        & ~AutomationCondition.any_deps_missing()
        & AutomationCondition.all_deps_blocking_checks_passed()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label("eager on new data")
