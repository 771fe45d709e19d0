"""The deployment docs cannot drift from the templates: same alert queries, every role, every switch."""

from __future__ import annotations

import re

from tests.infra import bicep
from tests.infra.bicep import ROOT
from tests.infra.test_roles import EXPECTED_GRANTS

DEPLOY = (ROOT / "docs" / "DEPLOY.md").read_text()
README = (ROOT / "README.md").read_text()
README_SECTION = README[
    README.index("<!-- section:deploy:start -->") : README.index("<!-- section:deploy:end -->")
]


def test_deploy_md_shows_exactly_the_deployed_alert_queries():
    documented = [block.strip() for block in re.findall(r"```kusto\n(.*?)```", DEPLOY, flags=re.S)]
    alerts = bicep.app_module("alerts")
    deployed = [
        bicep.resolve(alerts, name).strip()
        for name in ("rotationFailedQuery", "targetOverdueQuery", "sweepMissingQuery")
    ]
    assert documented == deployed


def test_both_docs_explain_every_role_the_templates_grant():
    for role, _, _ in EXPECTED_GRANTS:
        assert role in DEPLOY, role
        assert role in README_SECTION, role


def test_readme_section_covers_deploying_onboarding_disabling_and_auth():
    for needle in (
        "azd up",
        "ROTATION_TARGET_IDS",
        "azd provision",
        "DISABLE_ROTATION",
        "ENABLE_ADMIN_AUTH",
        "/runtime/webhooks/eventgrid",
        "docs/DEPLOY.md",
    ):
        assert needle in README_SECTION, needle


def test_documented_azd_values_are_the_ones_the_parameters_file_reads():
    values = (ROOT / "infra" / "main.parameters.json").read_text()
    read = set(re.findall(r"\$\{([A-Z_]+)", values)) - {"AZURE_ENV_NAME", "AZURE_LOCATION"}
    documented = set(re.findall(r"`([A-Z][A-Z_]+)`", DEPLOY))
    assert read <= documented, read - documented
