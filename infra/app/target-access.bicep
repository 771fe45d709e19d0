// Deployed into each target account's resource group: the least-privilege custom role (read, listKeys,
// regenerateKey) on that one account, so the service can rotate nothing else.
param accountName string
param principalId string

@description('Name (GUID) of the AI Services Key Rotator custom role definition.')
param roleDefinitionGuid string

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: accountName
}

// AI Services Key Rotator (custom role) for the service identity, on the target account.
resource keyRotator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, roleDefinitionGuid)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output roleAssignmentId string = keyRotator.id
