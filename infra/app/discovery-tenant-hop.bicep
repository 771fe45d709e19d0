// ARM lets a subscription-scoped deployment reach a management group only through the tenant scope
// (Azure/bicep#13544: "Bicep is reflecting an ARM limitation"), so main.bicep deploys this hop at tenant(),
// and the hop deploys the role assignment at the management group. The hop itself creates nothing.
targetScope = 'tenant'

param managementGroupId string
param principalId string

@description('Name (GUID) of the AI Services Key Rotator custom role definition.')
param roleDefinitionGuid string

module managementGroupAccess 'discovery-management-group-access.bicep' = {
  name: 'discovery-access-mg-${uniqueString(managementGroupId, principalId)}'
  scope: managementGroup(managementGroupId)
  params: {
    principalId: principalId
    roleDefinitionGuid: roleDefinitionGuid
  }
}
