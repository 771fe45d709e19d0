"""The private-network option (enablePrivateNetwork, off by default): VNet integration for the Flex app,
private endpoints + private DNS zones for Key Vault and Storage, public network access off on both -
and none of it when the option is off."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra import bicep
from tests.infra.bicep import INFRA, MAIN
from tests.infra.bicep_eval import Evaluator

NETWORK = bicep.app_module("network")
ENDPOINT = bicep.app_module("private-endpoint")
STORAGE = bicep.app_module("storage")
VAULT = bicep.app_module("key-vault")
FUNCTION_APP = bicep.app_module("function-app")

SAMPLES = {
    "environment().suffixes.storage": "core.windows.net",
    "network.outputs.appSubnetId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/"
    "virtualNetworks/vnet-abc/subnets/snet-app",
    "network.outputs.blobDnsZoneId": "zone-blob",
    "network.outputs.queueDnsZoneId": "zone-queue",
    "network.outputs.tableDnsZoneId": "zone-table",
}


def _main(**params: Any) -> Evaluator:
    return Evaluator(
        MAIN, params={"environmentName": "prod", "location": "westeurope", **params}, samples=SAMPLES
    )


def test_the_option_is_off_by_default_and_azd_can_turn_it_on():
    assert bicep.param(MAIN, "enablePrivateNetwork")["default"] is False
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert values["enablePrivateNetwork"]["value"] == "${ENABLE_PRIVATE_NETWORK=false}"


def test_network_and_every_private_endpoint_exist_only_with_the_option():
    assert bicep.module(MAIN, "network").condition == "enablePrivateNetwork"
    assert bicep.module(MAIN, "keyVaultEndpoint").condition == "enablePrivateNetwork"
    loop = bicep.module(MAIN, "storageEndpoint").loop["detail"]["array_name"]
    assert _main(enablePrivateNetwork=False).eval(loop) == []
    assert _main(enablePrivateNetwork=True).eval(loop) == ["blob", "queue", "table"]


@pytest.mark.parametrize("service", ["blob", "queue", "table"])
def test_each_storage_service_gets_an_endpoint_in_its_own_zone(service: str):
    call = bicep.module(MAIN, "storageEndpoint")
    params = call.body["params"]
    assert bicep.render(params["targetResourceId"]) == "storage.outputs.id"
    assert params["groupId"] == "service"
    assert bicep.render(params["subnetId"]) == "network.outputs.privateEndpointSubnetId"
    zone = _main(enablePrivateNetwork=True).eval(params["privateDnsZoneId"], {"service": service})
    assert zone == f"zone-{service}"


def test_the_vault_endpoint_targets_the_vault_new_or_existing_in_its_zone():
    params = bicep.module(MAIN, "keyVaultEndpoint").body["params"]
    assert params["groupId"] == "vault"
    assert params["targetResourceId"] == "keyVaultId"
    assert bicep.render(bicep.variable(MAIN, "keyVaultId")) == (
        # pycep lists the optional subscription argument last
        "resourceId(keyVaultResourceGroupName, Microsoft.KeyVault/vaults, keyVaultName,"
        " subscription().subscriptionId)"
    )
    assert bicep.render(params["privateDnsZoneId"]) == "network.outputs.keyVaultDnsZoneId"


def test_endpoints_register_in_their_private_dns_zone():
    endpoint = bicep.the_resource(ENDPOINT, "Microsoft.Network/privateEndpoints")
    [connection] = endpoint.properties["privateLinkServiceConnections"]
    assert connection["properties"] == {"privateLinkServiceId": "targetResourceId", "groupIds": ["groupId"]}
    assert endpoint.properties["subnet"] == {"id": "subnetId"}
    group = bicep.the_resource(ENDPOINT, "Microsoft.Network/privateEndpoints/privateDnsZoneGroups")
    assert group.body["parent"] == "endpoint"
    [config] = group.properties["privateDnsZoneConfigs"]
    assert config["properties"] == {"privateDnsZoneId": "privateDnsZoneId"}
    assert bicep.decorator(ENDPOINT, "groupId", "allowed") == ["vault", "blob", "queue", "table"]


@pytest.mark.parametrize("ai_zones", [True, False])
def test_dns_zones_for_vault_storage_and_ai_accounts_linked_to_the_vnet(ai_zones: bool):
    zones = Evaluator(NETWORK, params={"createAiServicesDnsZones": ai_zones}, samples=SAMPLES).eval(
        "zoneNames"
    )
    service = [
        "privatelink.vaultcore.azure.net",
        "privatelink.blob.core.windows.net",
        "privatelink.queue.core.windows.net",
        "privatelink.table.core.windows.net",
    ]
    ai = [
        "privatelink.cognitiveservices.azure.com",
        "privatelink.openai.azure.com",
        "privatelink.services.ai.azure.com",
    ]
    assert zones == (service + ai if ai_zones else service)
    # outputs index the list: the first four are the service zones, in this order
    for index, name in enumerate(["keyVault", "blob", "queue", "table"]):
        assert bicep.render(bicep.output(NETWORK, f"{name}DnsZoneId")) == f"zones[{index}].id"
    links = bicep.resource(NETWORK, "zoneLinks")
    assert links.loop["detail"]["array_name"] == "zoneNames"
    assert links.properties["registrationEnabled"] is False
    assert bicep.render(links.properties["virtualNetwork"]["id"]) == "vnet.id"


def test_vnet_has_a_delegated_app_subnet_and_an_endpoint_subnet_both_behind_nsgs():
    vnet = bicep.the_resource(NETWORK, "Microsoft.Network/virtualNetworks")
    subnets = {bicep.resolve(NETWORK, s["name"]): s["properties"] for s in vnet.properties["subnets"]}
    assert set(subnets) == {"snet-app", "snet-private-endpoints"}
    app = subnets["snet-app"]
    # Flex Consumption integrates with a subnet delegated to Microsoft.App/environments.
    assert [d["properties"]["serviceName"] for d in app["delegations"]] == ["Microsoft.App/environments"]
    for properties in subnets.values():
        assert "networkSecurityGroup" in properties
    assert "delegations" not in subnets["snet-private-endpoints"]
    assert bicep.render(bicep.output(NETWORK, "appSubnetId")).endswith("appSubnetName)")


@pytest.mark.parametrize("on", [True, False])
def test_function_app_integrates_with_the_app_subnet_only_with_the_option(on: bool):
    expr = bicep.module(MAIN, "functionApp").body["params"]["virtualNetworkSubnetId"]
    subnet = _main(enablePrivateNetwork=on).eval(expr)
    assert subnet == (SAMPLES["network.outputs.appSubnetId"] if on else "")
    site = bicep.the_resource(FUNCTION_APP, "Microsoft.Web/sites")
    value = Evaluator(FUNCTION_APP, params={"virtualNetworkSubnetId": subnet}).eval(
        site.properties["virtualNetworkSubnetId"]
    )
    assert value == (subnet if on else None)  # null: no VNet integration at all
    # the host starts only once its storage and vault resolve privately
    depends = bicep.module(MAIN, "functionApp").body["dependsOn"]
    assert {"keyVaultEndpoint", "storageEndpoint"} <= set(depends)


@pytest.mark.parametrize("on", [True, False])
@pytest.mark.parametrize("path", [STORAGE, VAULT], ids=["storage", "key-vault"])
def test_public_network_access_is_off_with_the_option_and_on_without(path, on: bool):
    declaration = resource_of(path)
    evaluator = Evaluator(path, params={"privateNetwork": on})
    properties = declaration.properties
    assert evaluator.eval(properties["publicNetworkAccess"]) == ("Disabled" if on else "Enabled")
    assert evaluator.eval(properties["networkAcls"]["defaultAction"]) == ("Deny" if on else "Allow")
    assert properties["networkAcls"]["bypass"] == "AzureServices"


def resource_of(path):
    kind = "Microsoft.Storage/storageAccounts" if path == STORAGE else "Microsoft.KeyVault/vaults"
    return bicep.the_resource(path, kind)


def test_main_passes_the_option_to_storage_and_the_new_vault():
    assert bicep.module(MAIN, "storage").body["params"]["privateNetwork"] == "enablePrivateNetwork"
    assert bicep.module(MAIN, "keyVault").body["params"]["privateNetwork"] == "enablePrivateNetwork"
    assert bicep.param(STORAGE, "privateNetwork")["default"] is False
    assert bicep.param(VAULT, "privateNetwork")["default"] is False
