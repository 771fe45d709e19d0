// Discovery mode, deployed at each subscription in discoverySubscriptionIds: the least-privilege custom role
// (read, listKeys, regenerateKey) once for the whole subscription, so every account tagged there can be
// listed and rotated - one assignment however many accounts the subscription holds.
targetScope = 'subscription'

param principalId string

@description('Name (GUID) of the AI Services Key Rotator custom role definition.')
param roleDefinitionGuid string

// AI Services Key Rotator (custom role) for the service identity, on the subscription.
resource keyRotator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinitionGuid)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output roleAssignmentId string = keyRotator.id
