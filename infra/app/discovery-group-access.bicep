// Discovery mode, narrower: deployed into each resource group in discoveryResourceGroups: the custom role
// once for the group, so the tagged accounts in it (and only there) can be listed and rotated.
param principalId string

@description('Name (GUID) of the AI Services Key Rotator custom role definition.')
param roleDefinitionGuid string

// AI Services Key Rotator (custom role) for the service identity, on the resource group.
resource keyRotator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, roleDefinitionGuid)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output roleAssignmentId string = keyRotator.id
