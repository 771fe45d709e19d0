"""Every template parses offline, modules are wired to what they declare, and azd's files agree with them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.infra import bicep
from tests.infra.bicep import INFRA, MAIN, ROOT

BICEP_FILES = bicep.bicep_files()


def test_the_templates_this_suite_checks_exist():
    names = {path.relative_to(INFRA).as_posix() for path in BICEP_FILES}
    assert {
        "main.bicep",
        "app/function-app.bicep",
        "app/key-vault.bicep",
        "app/key-vault-access.bicep",
        "app/key-vault-events-subscription.bicep",
        "app/target-access.bicep",
        "app/service-roles.bicep",
        "app/alerts.bicep",
    } <= names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_template_parses(path: Path):
    tree = bicep.parse(path)
    assert tree.get("resources") or tree.get("modules"), f"{path.name} declares nothing"


def test_no_registry_modules_so_the_build_works_offline():
    for path in BICEP_FILES:
        for declaration in bicep.modules(path):
            assert not declaration.type.startswith(("br:", "br/", "ts:", "ts/")), declaration.type


def _module_calls() -> list[tuple[Path, bicep.Declaration]]:
    return [(path, call) for path in BICEP_FILES for call in bicep.modules(path)]


@pytest.mark.parametrize("path, call", _module_calls(), ids=lambda v: getattr(v, "symbol", ""))
def test_module_calls_pass_exactly_the_declared_parameters(path: Path, call: bicep.Declaration):
    target = bicep.module_file(call)
    assert target.is_file(), f"{call.symbol} points at missing {call.type}"
    declared = bicep.parse(target).get("parameters", {})
    passed = set(call.body.get("params", {}))
    unknown = passed - set(declared)
    missing = {name for name, spec in declared.items() if "default" not in spec} - passed
    assert not unknown, f"{call.symbol} passes parameters {target.name} does not declare: {unknown}"
    assert not missing, f"{call.symbol} omits required parameters of {target.name}: {missing}"


def _output_references(node, found):
    """Collect (module symbol, output name) of every `<module>.outputs.<name>` in a tree."""
    if isinstance(node, dict):
        operator = node.get("operator")
        if isinstance(operator, dict) and operator.get("type") == "property_accessor":
            first, second = operator["operands"]["operand_1"], operator["operands"]["operand_2"]
            inner = second.get("operator", {}) if isinstance(second, dict) else {}
            if isinstance(first, str) and inner.get("type") == "property_accessor":
                if inner["operands"]["operand_1"] == "outputs":
                    found.add((first, bicep.render(inner["operands"]["operand_2"])))
        for value in node.values():
            _output_references(value, found)
    elif isinstance(node, list):
        for value in node:
            _output_references(value, found)
    return found


def test_module_outputs_used_by_main_exist():
    references = _output_references(bicep.parse(MAIN), set())
    assert ("keyVaultAccess", "vaultUri") in references and ("identity", "principalId") in references
    for symbol, name in references:
        target = bicep.module_file(bicep.module(MAIN, symbol))
        assert name in bicep.parse(target).get("outputs", {}), f"{symbol}.outputs.{name} is not declared"


def test_parameters_file_names_only_declared_parameters_and_every_required_one():
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = bicep.parse(MAIN)["parameters"]
    assert set(values) <= set(declared), set(values) - set(declared)
    required = {name for name, spec in declared.items() if "default" not in spec}
    assert required <= set(values), required - set(values)
    for name, entry in values.items():
        assert re.fullmatch(r"\$\{[A-Z_]+(=[^}]*)?\}", entry["value"]), f"{name} is not an azd substitution"
    assert values["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert values["location"]["value"] == "${AZURE_LOCATION}"
    assert values["targetResourceIds"]["value"].startswith("${ROTATION_TARGET_IDS")


def test_azure_yaml_deploys_the_function_app_and_runs_the_postdeploy_hook():
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert config["services"] == {"api": {"project": ".", "language": "python", "host": "function"}}
    assert config["infra"]["path"] == "infra" and config["infra"]["module"] == "main"
    hook = config["hooks"]["postdeploy"]
    assert hook["posix"]["shell"] == "sh" and hook["windows"]["shell"] == "pwsh"
    for variant in ("posix", "windows"):
        assert (ROOT / hook[variant]["run"]).is_file(), hook[variant]["run"]
        assert hook[variant]["continueOnError"] is False


def test_function_app_is_tagged_for_azd_service_api():
    site = bicep.the_resource(bicep.app_module("function-app"), "Microsoft.Web/sites")
    assert "'azd-service-name': api" in bicep.render(site.body["tags"])


def test_funcignore_ships_the_runtime_code_and_leaves_the_rest_out():
    import fnmatch

    patterns = [
        line.strip().rstrip("/")
        for line in (ROOT / ".funcignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(name: str) -> bool:
        return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)

    runtime_packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} & {
        "rotation",
        "shared",
        "triggers",
    }
    assert runtime_packages == {"rotation", "shared", "triggers"}
    for shipped in ("function_app.py", "host.json", "requirements.txt", *runtime_packages):
        assert not ignored(shipped), shipped
    for left_out in (".venv", "node_modules", "tests", "testkit", "emulator", "infra", "local.settings.json",
                     "operator_cli"):
        assert ignored(left_out), left_out
