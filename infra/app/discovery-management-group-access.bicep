// Discovery mode, deployed at the management group discoveryManagementGroupId names: the least-privilege
// custom role (read, listKeys, regenerateKey) once for every subscription under the management group,
// present and future - one assignment however many subscriptions and accounts it holds.
targetScope = 'managementGroup'

param principalId string

@description('Name (GUID) of the AI Services Key Rotator custom role definition.')
param roleDefinitionGuid string

// AI Services Key Rotator (custom role) for the service identity, on the management group. A role
// definition is a tenant-wide object: its tenant-level id resolves at any scope it is assignable at.
resource keyRotator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(managementGroup().id, principalId, roleDefinitionGuid)
  properties: {
    roleDefinitionId: tenantResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output roleAssignmentId string = keyRotator.id
